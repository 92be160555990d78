"""The web console's words, in Vietnamese (default) and English: one dict per language, same keys."""

from __future__ import annotations

from typing import Any

from bot.cards import POPULATION_LABELS, STATE_LABELS

VI: dict[str, Any] = {
    "lang": "vi", "app": "edudesk", "queue": "Hàng đợi", "registry": "Danh bạ", "whoami": "Tài khoản",
    "logout": "Đăng xuất", "login": "Đăng nhập", "all_open": "Tất cả yêu cầu đang mở", "all_kinds": "Mọi loại",
    "state": "Trạng thái", "kind": "Loại", "population": "Đối tượng", "people": "Số người", "deadline": "Hạn xử lý",
    "overdue_only": "Chỉ quá hạn", "search": "Tìm", "search_hint": "Số YC, người gửi, họ tên, mã số",
    "filter": "Lọc", "no_requests": "Không có yêu cầu nào.", "overdue": "quá hạn", "left": "còn",
    "hours": "giờ", "minutes": "phút", "number": "Số", "sender": "Người gửi", "open_requests": "yêu cầu",
    "persons": "Danh sách người", "row": "STT", "full_name": "Họ và tên", "person_id": "Mã số",
    "date_of_birth": "Ngày sinh", "unit_class": "Lớp / đơn vị", "mobile": "Điện thoại",
    "address": "Địa chỉ đề xuất", "findings": "Kết quả kiểm tra", "audit": "Nhật ký xử lý", "time": "Thời gian",
    "actor": "Người thực hiện", "action": "Thao tác", "detail": "Chi tiết", "mails": "Thư gốc",
    "download_eml": "Tải thư gốc (.eml)", "download_csv": "Tải danh sách (CSV)", "reason": "Lý do",
    "other_reason": "Lý do khác", "send": "Gửi", "back": "« Hàng đợi", "done_flash": "Đã ghi nhận.",
    "assign": "Giao cho", "assign_button": "Giao việc", "nobody": "(chưa giao)", "changed": "Yêu cầu vừa thay đổi.",
    "reload": "Tải lại", "roles": "Vai trò", "email": "Thư điện tử", "telegram": "Telegram",
    "session_until": "Phiên đăng nhập đến", "yes": "có", "no": "không", "prev": "‹ Trước", "next": "Sau ›",
    "page": "Trang", "results": "kết quả", "all_populations": "Mọi đối tượng", "cohort": "Khóa",
    "registry_hint": "Họ tên (có hoặc không dấu) hoặc mã số", "bye": "Đã đăng xuất.",
    "login_title": "Đăng nhập bảng điều khiển",
    "login_how": "edudesk không dùng mật khẩu. Để đăng nhập, Anh/Chị cần một liên kết đăng nhập dùng một lần:",
    "login_ways": ["gõ /login cho bot Telegram của phòng;",
                   "hoặc dùng liên kết in ra khi edudesk khởi động lần đầu (quản trị viên);",
                   "hoặc nhờ quản trị viên tạo liên kết bằng dòng lệnh trên máy chủ."],
    "login_reopen": "Nếu Anh/Chị đã đăng nhập rồi, mở lại trang:",
    "login_confirm": "Bấm nút dưới đây để đăng nhập. Liên kết chỉ dùng được một lần.",
    "refused_title": "Yêu cầu bị từ chối",
    "csrf_refused": "Biểu mẫu không hợp lệ hoặc đã cũ (kiểm tra bảo mật không đạt). "
                    "Vui lòng tải lại trang rồi thử lại.",
    "not_found": "Không tìm thấy trang này.", "error_title": "Có lỗi",
    "no_role": "Tài khoản của Anh/Chị chưa được cấp vai trò nào nên chưa xem được yêu cầu. Hãy đề nghị quản trị viên "
               "cấp vai trò (edudesk staff add ... --role ...).",
    "bad_form": "Biểu mẫu không hợp lệ; vui lòng tải lại trang.",
    "states": STATE_LABELS["vi"], "populations": POPULATION_LABELS["vi"],
    "kinds": {"new_account": "Cấp tài khoản", "password_reset": "Cấp lại mật khẩu",
              "bulk_new_accounts": "Cấp tài khoản theo danh sách", "delete_accounts": "Xoá tài khoản",
              "unknown": "Hỗ trợ khác"},
    "roles_names": {"office": "Văn phòng", "technical": "Kỹ thuật", "head": "Trưởng bộ phận", "admin": "Quản trị"},
    "actions": {"mail_request_created": "Thư tạo yêu cầu", "mail_reply": "Thư trả lời", "mail_sent": "Đã gửi thư",
                "action_refused": "Thao tác bị từ chối", "auto_reply_suppressed": "Không gửi thư tự động",
                "request_provisioned": "Đã thực hiện", "request_provision_failed": "Lỗi khi thực hiện",
                "request_rechecked": "Kiểm tra lại", "job_dead": "Công việc lỗi", "mail_reprocess": "Xử lý lại thư"},
}

EN: dict[str, Any] = {
    "lang": "en", "app": "edudesk", "queue": "Queue", "registry": "Registry", "whoami": "Account",
    "logout": "Sign out", "login": "Sign in", "all_open": "All open requests", "all_kinds": "All kinds",
    "state": "State", "kind": "Kind", "population": "For", "people": "People", "deadline": "Deadline",
    "overdue_only": "Overdue only", "search": "Search", "search_hint": "Request number, sender, name, ID",
    "filter": "Filter", "no_requests": "No requests.", "overdue": "overdue", "left": "",
    "hours": "h", "minutes": "min", "number": "No.", "sender": "Sender", "open_requests": "requests",
    "persons": "People", "row": "#", "full_name": "Full name", "person_id": "ID", "date_of_birth": "Date of birth",
    "unit_class": "Class / unit", "mobile": "Phone", "address": "Proposed address", "findings": "Checks",
    "audit": "Audit trail", "time": "Time", "actor": "By", "action": "Action", "detail": "Detail",
    "mails": "Original mail", "download_eml": "Download the mail (.eml)", "download_csv": "Download the list (CSV)",
    "reason": "Reason", "other_reason": "Other reason", "send": "Send", "back": "« Queue", "done_flash": "Done.",
    "assign": "Assign to", "assign_button": "Assign", "nobody": "(nobody)", "changed": "This request has changed.",
    "reload": "Reload", "roles": "Roles", "email": "E-mail", "telegram": "Telegram",
    "session_until": "Signed in until", "yes": "yes", "no": "no", "prev": "‹ Previous", "next": "Next ›",
    "page": "Page", "results": "results", "all_populations": "Everyone", "cohort": "Cohort",
    "registry_hint": "Name (with or without diacritics) or ID", "bye": "Signed out.",
    "login_title": "Sign in to the console",
    "login_how": "edudesk uses no passwords. To sign in you need a one-time sign-in link:",
    "login_ways": ["send /login to the office's Telegram bot;",
                   "or use the link printed when edudesk first starts (administrator);",
                   "or ask an administrator to make one on the server's command line."],
    "login_reopen": "If you are signed in already, open the page again:",
    "login_confirm": "Press the button to sign in. The link works only once.",
    "refused_title": "Request refused",
    "csrf_refused": "The form is invalid or out of date (security check failed). Please reload the page and retry.",
    "not_found": "Page not found.", "error_title": "Error",
    "no_role": "Your account has no role yet, so requests are not shown. Ask an administrator for one.",
    "bad_form": "Invalid form; please reload the page.",
    "states": STATE_LABELS["en"], "populations": POPULATION_LABELS["en"],
    "kinds": {"new_account": "New account", "password_reset": "Password reset",
              "bulk_new_accounts": "Accounts for a list", "delete_accounts": "Delete accounts", "unknown": "Other"},
    "roles_names": {"office": "Office", "technical": "Technical", "head": "Head", "admin": "Administrator"},
    "actions": {"mail_request_created": "Mail created the request", "mail_reply": "Reply received",
                "mail_sent": "Mail sent", "action_refused": "Action refused",
                "auto_reply_suppressed": "Automatic mail suppressed", "request_provisioned": "Provisioned",
                "request_provision_failed": "Provisioning failed", "request_rechecked": "Re-checked",
                "job_dead": "Job failed", "mail_reprocess": "Mail reprocessed"},
}


def labels(language: str) -> dict[str, Any]:
    """The labels for [general].language ("en" or Vietnamese)."""
    return EN if language == "en" else VI
