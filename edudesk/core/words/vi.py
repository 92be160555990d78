"""Every word a person reads, in Vietnamese: one flat dict, key -> text (str.format placeholders).

Keys are grouped by prefix: state., kind., mailkind., population., role., channel., event., detail., error.,
card., cmd., cli., web., rec., links., form., time., mail., mailauth., mailcheck. The English catalogue (en.py)
has exactly these keys with the same placeholders (tests/unit/test_words.py checks it).
"""

from __future__ import annotations

WORDS: dict[str, str] = {
    # Request states (core/requests/workflow.py State).
    "state.received": "Chờ kiểm tra",
    "state.need_info": "Chờ bổ sung",
    "state.approved": "Chờ thực hiện",
    "state.provisioning": "Đang thực hiện",
    "state.done": "Đã xong",
    "state.rejected": "Đã từ chối",
    # Request kinds (core/intake/domain.py Kind): short labels for lists and cards.
    "kind.new_account": "Cấp tài khoản",
    "kind.password_reset": "Cấp lại mật khẩu",
    "kind.bulk_new_accounts": "Cấp tài khoản theo danh sách",
    "kind.delete_accounts": "Xoá tài khoản",
    "kind.question": "Câu hỏi",
    "kind.reply": "Thư trả lời",
    "kind.auto_reply": "Thư trả lời tự động",
    "kind.bounce": "Thư báo lỗi gửi",
    "kind.unknown": "Hỗ trợ khác",
    # The same kinds as a phrase inside a sentence ("yêu cầu cấp tài khoản thư điện tử").
    "mailkind.new_account": "cấp tài khoản thư điện tử",
    "mailkind.password_reset": "cấp lại mật khẩu tài khoản thư điện tử",
    "mailkind.bulk_new_accounts": "cấp tài khoản thư điện tử theo danh sách",
    "mailkind.delete_accounts": "xoá tài khoản thư điện tử",
    "mailkind.question": "hỗ trợ (câu hỏi)",
    "mailkind.reply": "hỗ trợ",
    "mailkind.auto_reply": "hỗ trợ",
    "mailkind.bounce": "hỗ trợ",
    "mailkind.unknown": "hỗ trợ",
    # Populations (core/intake/domain.py Population).
    "population.staff": "Cán bộ",
    "population.student": "Sinh viên",
    # Staff roles (core/people/staff.py Role).
    "role.office": "Văn phòng",
    "role.technical": "Kỹ thuật",
    "role.head": "Trưởng bộ phận",
    "role.admin": "Quản trị",
    "role.teacher": "Giáo viên",
    "role.leader": "Ban giám hiệu",
    "role.none": "chưa có vai trò",
    # Staff actions on a request (core/requests/service.py Action).
    "action.approve": "Hợp lệ",
    "action.reject": "Từ chối",
    "action.ask_info": "Yêu cầu bổ sung",
    "action.provision": "Thực hiện trên hệ thống",
    # Intake and chat channels.
    "channel.imap": "IMAP",
    "channel.smtp": "SMTP",
    "channel.outgoing": "gửi thư (SMTP)",
    "notice.keep_unverified": ("YC-{number}: đơn vị trả lời đề nghị giữ lại tài khoản ở dòng {rows}, nhưng không "
                               "xác minh được người gửi (DMARC/DKIM). Nếu đúng, hãy bấm «Giữ tài khoản» trên yêu cầu."),
    "notice.channel_failing": ("Cảnh báo: kênh {channel} đang lỗi ({failures} lần liên tiếp). "
                               "Lỗi gần nhất: {error}\n"
                               "Hệ thống vẫn tự thử lại; không có thư nào bị mất. Đề nghị cán bộ kỹ thuật kiểm tra."),
    "channel.telegram": "Telegram",
    "channel.zalo": "Zalo",
    "channel.web": "Bảng điều khiển web",
    # Audit events (AuditEvent.action), as the console's audit trail and the cards' history show them.
    "event.access_denied": "Truy cập bị từ chối",
    "event.action_refused": "Thao tác bị từ chối",
    "event.action_token_refused": "Liên kết thao tác bị từ chối",
    "event.action_token_used": "Đã dùng liên kết thao tác",
    "event.auto_reply_suppressed": "Không gửi thư tự động",
    "event.report_download": "Tải báo cáo",
    "event.report_made": "Lập báo cáo",
    "event.report_monthly_sent": "Gửi báo cáo tháng",
    "event.report_monthly_unsent": "Báo cáo tháng không có người nhận",
    "event.channel_failing": "Kênh nhận thư bị lỗi",
    "event.channel_recovered": "Kênh nhận thư hoạt động lại",
    "event.chat_link_code": "Tạo mã liên kết chat",
    "event.chat_link_mail": "Gửi mã liên kết chat qua thư",
    "event.chat_link_refused": "Liên kết chat bị từ chối",
    "event.chat_linked": "Đã liên kết chat",
    "event.job_dead": "Công việc lỗi",
    "event.mail_auto_reply": "Thư trả lời tự động (bỏ qua)",
    "event.mail_bounce": "Thư báo lỗi gửi (bỏ qua)",
    "event.mail_flood": "Người gửi gửi quá nhiều thư",
    "event.mail_reply": "Thư trả lời",
    "event.mail_reprocess": "Xử lý lại thư",
    "event.mail_request_created": "Thư tạo yêu cầu",
    "event.mail_sent": "Đã gửi thư",
    "event.mail_spam": "Thư rác (bỏ qua, không trả lời)",
    "event.mail_timeout": "Không đọc được thư (quá thời gian)",
    "event.mail_too_large": "Thư quá lớn",
    "event.mail_updated_form": "Thư gửi lại phiếu đã sửa",
    "event.message_id_reused": "Mã thư (Message-ID) bị dùng lại",
    "event.notify_via_changed": "Đổi cách nhận thông báo",
    "event.oauth_refreshed": "Làm mới quyền truy cập Zalo",
    "event.password_link_opened": "Người nhận đã mở liên kết mật khẩu",
    "event.password_link_refused": "Liên kết mật khẩu bị từ chối",
    "event.raw_mail_purged": "Xoá thư gốc đã quá hạn lưu",
    "event.record_recreated": "Duyệt huỷ học bạ, làm lại",
    "event.record_return_refused": "Không huỷ học bạ, ký tiếp",
    "event.record_returned": "Báo sai sót học bạ",
    "event.record_signature_rejected": "Chữ ký học bạ không đạt kiểm tra",
    "event.record_signed": "Đã ký học bạ",
    "event.records_class_confirmed": "Xác nhận hoàn tất học bạ của lớp",
    "event.records_escalated": "Báo ban giám hiệu: giáo viên chậm ký",
    "event.records_imported": "Nhập danh sách học bạ",
    "event.records_refused": "Thao tác học bạ bị từ chối",
    "event.records_reminded": "Nhắc giáo viên ký học bạ",
    "event.records_sign_done": "Phiên ký học bạ xong",
    "event.records_sign_pending": "Chờ xác nhận ký số từ xa",
    "event.records_sign_refused": "Phiên ký học bạ không ký được",
    "event.records_sign_started": "Bắt đầu ký học bạ",
    "event.request_approve": "Hợp lệ",
    "event.request_ask_info": "Yêu cầu bổ sung",
    "event.request_escalated": "Báo trưởng bộ phận: quá hạn",
    "event.request_overdue": "Quá hạn xử lý",
    "event.request_provision": "Bắt đầu thực hiện trên hệ thống",
    "event.request_provision_failed": "Lỗi khi thực hiện",
    "event.request_provisioned": "Đã thực hiện",
    "event.request_reassign": "Giao việc",
    "event.request_rechecked": "Kiểm tra lại",
    "event.request_reject": "Từ chối",
    "event.signer_approved": "Duyệt chứng thư số",
    "event.signer_pin_set": "Đặt mã PIN ký",
    "event.signer_registered": "Đăng ký chứng thư số",
    "event.signer_rejected": "Từ chối chứng thư số",
    "event.staff_created": "Tạo tài khoản cán bộ",
    "event.staff_notice_failed": "Không gửi được thông báo cho cán bộ",
    "event.web_csrf_refused": "Biểu mẫu web bị từ chối (kiểm tra bảo mật)",
    "event.web_login_link": "Tạo liên kết đăng nhập",
    "event.web_session_closed": "Đăng xuất",
    "event.web_session_opened": "Đăng nhập bảng điều khiển",
    "event.zalo_event_refused": "Tin Zalo bị từ chối",
    # Keys of an audit event's detail (the "Chi tiết" column).
    "detail.accounts": "Tài khoản",
    "detail.action": "Thao tác",
    "detail.after_failures": "Sau số lần lỗi",
    "detail.assignee": "Mã người được giao",
    "detail.assignee_name": "Người được giao",
    "detail.channel": "Kênh",
    "detail.class": "Lớp",
    "detail.class_id": "Mã lớp",
    "detail.classes": "Các lớp",
    "detail.credential": "Chứng thư số",
    "detail.deadline": "Hạn",
    "detail.detail": "Chi tiết",
    "detail.error": "Lỗi",
    "detail.failures": "Số lần lỗi",
    "detail.field": "Trường chữ ký",
    "detail.fields_updated": "Thông tin được bổ sung",
    "detail.findings": "Kết quả kiểm tra",
    "detail.first_mail_id": "Thư đầu tiên",
    "detail.flags": "Cảnh báo",
    "detail.from": "Từ",
    "detail.kind": "Loại",
    "detail.kept": "Giữ nguyên",
    "detail.late_hours": "Số giờ trễ",
    "detail.limit": "Giới hạn",
    "detail.mails": "Số thư",
    "detail.message_id": "Mã thư",
    "detail.messages": "Số tin nhắn",
    "detail.notify_via": "Nhận thông báo qua",
    "detail.older_than_days": "Cũ hơn (ngày)",
    "detail.owner": "Bộ phận",
    "detail.path": "Trang",
    "detail.permission": "Quyền",
    "detail.spam": "Dấu hiệu thư rác",
    "detail.persons": "Số người",
    "detail.population": "Đối tượng",
    "detail.previous": "Trước đó",
    "detail.problems": "Vấn đề",
    "detail.reason": "Lý do",
    "detail.recipient": "Người nhận",
    "detail.record": "Học bạ",
    "detail.records": "Số học bạ",
    "detail.return": "Báo sai sót",
    "detail.roles": "Vai trò",
    "detail.session": "Phiên ký",
    "detail.stage": "Bước",
    "detail.staff_id": "Mã cán bộ",
    "detail.staff_name": "Cán bộ",
    "detail.state": "Trạng thái",
    "detail.steps": "Số chữ ký",
    "detail.subject": "Tiêu đề",
    "detail.surface": "Kênh",
    "detail.target": "Đối tượng thao tác",
    "detail.teacher": "Giáo viên",
    "detail.teachers": "Số giáo viên",
    "detail.template": "Mẫu thư",
    "detail.text": "Nội dung",
    "detail.to": "Sang",
    "detail.total": "Tổng số",
    "detail.what": "Nội dung truy cập",
    # Error codes (EdudeskError.code): a short text for each, when a surface names the kind of error.
    "error.error": "Có lỗi khi xử lý.",
    "error.config": "Cấu hình chưa đúng.",
    "error.too_large": "Dữ liệu quá lớn.",
    "error.hostile_input": "Dữ liệu bị từ chối vì không an toàn.",
    "error.not_found": "Không tìm thấy.",
    "error.invalid_transition": "Yêu cầu không ở trạng thái cho phép thao tác này.",
    "error.stale": "Yêu cầu vừa thay đổi; vui lòng xem lại rồi thao tác.",
    "error.not_allowed": "Anh/Chị không có quyền thực hiện thao tác này.",
    "error.access_denied": "Anh/Chị không có quyền truy cập.",
    "error.action_refused": "Liên kết thao tác không hợp lệ hoặc đã hết hạn.",
    "error.link_refused": "Mã liên kết không đúng hoặc đã hết hạn.",
    "error.login_refused": "Liên kết đăng nhập không hợp lệ hoặc đã hết hạn.",
    "error.password_link_refused": "Liên kết nhận mật khẩu không hợp lệ, đã dùng hoặc đã hết hạn.",
    "error.mail_send": "Không gửi được thư.",
    "error.sign_out_of_order": "Chưa đến lượt ký.",
    "error.roster_invalid": "Danh sách học bạ không hợp lệ.",
    "error.csc": "Dịch vụ ký số từ xa báo lỗi.",
    "error.smartca": "VNPT SmartCA báo lỗi.",
    "error.cred_untrusted": "Chứng thư số không được tin cậy.",
    "error.record_pdf": "Tệp học bạ (PDF) không hợp lệ.",
    "error.pkcs11": "Thiết bị ký (token) báo lỗi.",
    "error.pin_incorrect": "Mã PIN của thiết bị ký (token) không đúng.",
    "error.pin_locked": "Thiết bị ký (token) đã bị khoá mã PIN.",
    "error.token_missing": "Không tìm thấy thiết bị ký (token).",
    "error.module": "Không nạp được trình điều khiển thiết bị ký.",
    "error.cert_missing": "Không tìm thấy chứng thư số trên thiết bị ký.",
    "error.pin_wrong": "Mã PIN ký không đúng.",
    "error.pin_required": "Cần nhập mã PIN ký.",
    "error.pin_not_set": "Chưa đặt mã PIN ký.",
    "error.pkcs12": "Không mở được tệp chứng thư số.",
    "error.action_disabled": "Thao tác này đang tắt.",
    "error.already_decided": "Yêu cầu đã được người khác xử lý.",
    "error.bad_action": "Thao tác không hợp lệ.",
    "error.bad_callback": "Nút bấm không hợp lệ hoặc đã cũ.",
    "error.bad_file": "Tệp không hợp lệ.",
    "error.bad_notify_via": "Cách nhận thông báo không hợp lệ.",
    "error.bad_role": "Vai trò không hợp lệ.",
    "error.config_backend": "Cấu hình hệ thống tài khoản chưa đúng.",
    "error.config_dovecot": "Cấu hình Dovecot chưa đúng.",
    "error.config_dovecot_moved": "Cấu hình Dovecot đã đổi chỗ.",
    "error.config_dovecot_path": "Đường dẫn Dovecot chưa đúng.",
    "error.config_google": "Cấu hình Google Workspace chưa đúng.",
    "error.config_ldap": "Cấu hình LDAP chưa đúng.",
    "error.config_mailcow": "Cấu hình mailcow chưa đúng.",
    "error.config_microsoft": "Cấu hình Microsoft 365 chưa đúng.",
    "error.config_missing": "Thiếu tệp cấu hình.",
    "error.config_naming": "Quy tắc đặt tên địa chỉ chưa đúng.",
    "error.config_records": "Cấu hình học bạ số chưa đúng.",
    "error.config_syntax": "Tệp cấu hình sai cú pháp.",
    "error.config_telegram": "Cấu hình Telegram chưa đúng.",
    "error.config_type": "Giá trị cấu hình sai kiểu.",
    "error.config_value": "Giá trị cấu hình không hợp lệ.",
    "error.cred_missing": "Chưa có chứng thư số được duyệt.",
    "error.csc_auth_mode": "Dịch vụ ký số từ xa dùng cách xác thực chưa hỗ trợ.",
    "error.csc_refused": "Người ký đã từ chối trên dịch vụ ký số từ xa.",
    "error.csc_waiting": "Đang chờ người ký xác nhận trên dịch vụ ký số từ xa.",
    "error.csc_sad": "Dịch vụ ký số từ xa không cấp quyền ký.",
    "error.csc_token": "Không lấy được quyền truy cập dịch vụ ký số từ xa.",
    "error.duplicate_field": "Trường chữ ký bị trùng.",
    "error.field_missing": "Thiếu trường chữ ký.",
    "error.field_signed": "Trường chữ ký đã được ký.",
    "error.mail_purged": "Thư gốc đã bị xoá theo thời hạn lưu.",
    "error.naming_exhausted": "Không còn địa chỉ trống theo quy tắc đặt tên.",
    "error.no_fields": "Tệp học bạ không có trường chữ ký.",
    "error.no_pending": "Không có việc nào đang chờ.",
    "error.no_persons": "Yêu cầu không có người nào.",
    "error.not_complete": "Lớp chưa ký đủ.",
    "error.not_confirmed": "Lớp chưa được xác nhận hoàn tất.",
    "error.not_pdf": "Tệp không phải PDF.",
    "error.not_signing": "Học bạ không ở bước ký.",
    "error.pdf_encrypted": "Tệp PDF bị đặt mật khẩu.",
    "error.pdf_signed": "Tệp PDF đã có chữ ký.",
    "error.pin_format": "Mã PIN không đúng định dạng.",
    "error.pin_not_needed": "Chứng thư số này không cần mã PIN.",
    "error.pkcs12_file": "Tệp chứng thư số không hợp lệ.",
    "error.pkcs12_passphrase": "Mật khẩu của tệp chứng thư số không đúng.",
    "error.pkcs12_sign": "Không ký được bằng tệp chứng thư số.",
    "error.reason_missing": "Cần ghi lý do.",
    "error.record_content": "Nội dung học bạ không hợp lệ.",
    "error.records_off": "Chức năng học bạ số chưa được bật.",
    "error.secret_key": "Khoá bí mật của máy chủ chưa đúng.",
    "error.signer_kind": "Loại chứng thư số không được hỗ trợ.",
    "error.softhsm": "Thiết bị ký thử nghiệm (SoftHSM) báo lỗi.",
    # Chat cards (bot/cards.py, templates/chat/request.*.html.j2). Buttons are words, never emoji.
    "card.approve": "Hợp lệ",
    "card.reject": "Từ chối",
    "card.ask_info": "Yêu cầu bổ sung",
    "card.provision.new_account": "Cấp tài khoản",
    "card.provision.bulk_new_accounts": "Cấp tài khoản",
    "card.provision.password_reset": "Cấp lại mật khẩu",
    "card.provision.delete_accounts": "Xoá tài khoản",
    "card.page": "Trang",
    "card.rows": "Tải danh sách",
    "card.pick_reject": "Chọn lý do từ chối:",
    "card.pick_ask_info": "Chọn nội dung cần bổ sung:",
    "card.type_reject": "Lý do khác…",
    "card.type_ask_info": "Nội dung khác…",
    "card.back": "« Quay lại",
    "card.reassign": "Giao lại",
    "card.from": "Người gửi",
    "card.state": "Trạng thái",
    "card.due": "hạn",
    "card.assignee": "Người xử lý",
    "card.people": "{total} người",
    "card.with_problems": "{n} người có lỗi",
    "card.page_of": "trang {page}/{pages}",
    "card.progress": "Đã thực hiện",
    "card.failed": "lỗi",
    "card.renamed": "{n} địa chỉ đổi vì đã có người dùng",
    "card.no_name": "(không rõ tên)",
    "card.was_taken": "đề xuất {address} đã có người dùng",
    "card.not_done": "Chưa thực hiện được: {detail}",
    "card.flag.auth_failed": "Thư không qua kiểm tra SPF/DKIM/DMARC",
    "card.flag.external_sender": "Người gửi ngoài trường",
    "card.flag.spoof_suspected": "Nghi giả mạo người gửi",
    "card.checked.full_name": "họ tên",
    "card.checked.date_of_birth": "ngày sinh",
    "card.checked.class": "lớp",
    "card.checked.unit": "đơn vị",
    "card.checked.mobile": "SĐT",
    "card.checked.id": "mã số",
    "card.no_request": "Không có yêu cầu số {id}.",
    "card.preset_gone": "Lý do không còn trong danh sách; vui lòng chọn lại.",
    # Time spans and moments.
    "time.left": "còn {span}",
    "time.overdue": "quá hạn {span}",
    "time.hours_minutes": "{hours} giờ {minutes} phút",
    "time.minutes": "{minutes} phút",
    # Text commands (bot/textcommands.py, Zalo) and Telegram commands (bot/telegram/commands.py).
    "cmd.todo_title": "Việc đang chờ Anh/Chị:",
    "cmd.todo_none": "Không có việc nào đang chờ Anh/Chị.",
    "cmd.todo_due": "hạn {when}",
    "cmd.overdue": "quá hạn",
    "cmd.todo_more": "Trang {page}/{pages} — còn {left} yêu cầu; gửi /danhsach {next} để xem tiếp.",
    "cmd.todo_records": "Lớp {klass} — {role}: {count} học bạ (gửi /ky {klass})",
    "cmd.recorded": "YC-{id}: đã ghi nhận «{action}».",
    "cmd.signing": "Đang ký {n} học bạ lớp {klass}. Nếu dùng ký số từ xa, hãy xác nhận trên điện thoại.",
    "cmd.signing_n": "Đang ký {n} học bạ.",
    "cmd.records_off": "Chức năng học bạ số chưa được bật.",
    "cmd.system_error": "Có lỗi hệ thống khi thực hiện lệnh; cán bộ kỹ thuật đã được ghi nhận. Vui lòng thử lại sau.",
    "cmd.queue_title": "Yêu cầu đang mở",
    "cmd.queue_none": "Không có yêu cầu nào đang mở.",
    "cmd.queue_count": "{total}, quá hạn và cũ nhất trước",
    "cmd.queue_page": "Trang {page}/{pages}",
    "cmd.queue_more": "gửi /queue {next} để xem tiếp",
    "cmd.find_usage": "Cú pháp: /find <số yêu cầu | họ tên | mã số>",
    "cmd.find_none": "Không tìm thấy «{term}».",
    "cmd.roles": "Vai trò: {roles}",
    "cmd.report": ("Báo cáo (đến {when})\n"
                   "Hôm nay: nhận {t_received}, hợp lệ {t_approved}, từ chối {t_rejected}, hoàn thành {t_done}\n"
                   "Tháng này: nhận {m_received}, hợp lệ {m_approved}, từ chối {m_rejected}, hoàn thành {m_done}\n"
                   "Đang mở: {open_now}, trong đó quá hạn: {overdue_now}"),
    "cmd.login_private": "Vì lý do bảo mật, hãy nhắn /login riêng cho bot.",
    "cmd.recorded_short": "Đã ghi nhận: {action}",
    "cmd.reassigned": "Đã giao lại",
    # Command line (main.py, cli/records.py).
    "cli.verify_ok": "ĐẠT: mọi chữ ký đều hợp lệ",
    "cli.verify_failed": "KHÔNG ĐẠT",
    # Mail words that depend on who is addressed (mailer/render.py, templates/email/).
    "mail.dear_person": "Kính gửi Anh/Chị {name},",
    "mail.dear_person_unnamed": "Kính gửi Anh/Chị,",
    "mail.dear_unit": "Kính gửi: {name}",
    "mail.dear_unit_unnamed": "Kính gửi: Quý đơn vị",
    "mail.you_person": "Anh/Chị",
    "mail.you_unit": "Quý đơn vị",
    "mail.dear_teacher": "Kính gửi Thầy/Cô {name},",
    "mail.dear_teacher_unnamed": "Kính gửi Thầy/Cô,",
    "mail.you_teacher": "Thầy/Cô",
    "mail.forms_person": "phiếu đăng ký (mẫu {staff_form} đối với cán bộ, {student_form} đối với sinh viên)",
    "mail.forms_unit": "danh sách theo mẫu {list_form}",
    "mail.template.received": "Xác nhận tiếp nhận",
    "mail.template.need_info": "Đề nghị bổ sung",
    "mail.template.rejected": "Từ chối",
    "mail.template.done": "Kết quả",
    "mail.template.too_large": "Thư quá lớn",
    "mail.template.unreadable": "Không đọc được thư",
    "mail.template.channel_failing": "Báo lỗi kênh nhận thư",
    "mail.template.link_code": "Mã liên kết chat",
    "mail.template.chat_notice": "Thông báo cho cán bộ",
    # Findings of form extraction (core/forms/messages.py), addressed to the requester.
    "form.unnamed": "(không có tên)",
    "form.no_form": ("Không tìm thấy thông tin đăng ký trong thư (họ và tên, mã số sinh viên hoặc mã cán bộ). "
                     "Vui lòng điền phiếu đăng ký theo mẫu và gửi lại."),
    "form.attachment_too_large": ("Tệp đính kèm “{name}” quá lớn ({mb:.1f} MB, tối đa {max_mb:.0f} MB); "
                                  "vui lòng gửi tệp nhỏ hơn."),
    "form.hostile_attachment": ("Tệp đính kèm “{name}” bị từ chối vì không an toàn (dung lượng giải nén quá lớn "
                                "hoặc quá nhiều thành phần). "
                                "Vui lòng gửi lại phiếu dạng .docx hoặc .xlsx thông thường."),
    "form.unreadable_attachment": ("Không đọc được tệp đính kèm “{name}” (tệp bị hỏng hoặc không đúng định dạng "
                                   ".docx, .xlsx, .csv, .pdf). Vui lòng kiểm tra và gửi lại."),
    "form.unsupported_attachment": ("Tệp “{name}” ở định dạng Word/Excel cũ (.doc/.xls) chưa đọc được tự động; "
                                    "vui lòng lưu lại dưới dạng .docx hoặc .xlsx và gửi lại."),
    "form.too_many_rows": ("Danh sách có hơn {limit} dòng; chỉ {limit} dòng đầu được xử lý. "
                           "Vui lòng chia danh sách thành nhiều thư."),
    "form.legacy_encoding": ("Phiếu được gõ bằng bảng mã cũ (TCVN3/VNI); họ tên đã được chuyển sang Unicode, "
                             "vui lòng kiểm tra lại."),
    "form.forwarded": "Phiếu nằm trong thư được chuyển tiếp; người viết thư gốc: {sender}.",
    "form.missing_name": "Thiếu họ và tên.",
    "form.missing_id": "Thiếu {what}.",
    "form.staff_id": "mã cán bộ",
    "form.student_id": "mã số sinh viên",
    "form.invalid_id": "Mã số “{raw}” không hợp lệ (mã số gồm chữ và số, ví dụ 20201234).",
    "form.invalid_date": "Ngày sinh “{raw}” không hợp lệ; vui lòng ghi theo dạng ngày/tháng/năm, ví dụ 05/03/2003.",
    "form.missing_mobile": "Thiếu số điện thoại di động (bắt buộc trên phiếu đăng ký).",
    "form.invalid_mobile": ("Số điện thoại “{raw}” không phải số di động hợp lệ; vui lòng ghi số di động, "
                            "ví dụ 0912 345 678."),
    "form.invalid_email": "Địa chỉ email cá nhân “{raw}” không hợp lệ.",
    "form.duplicate_row": ("Mã số {person_id} xuất hiện nhiều lần trong danh sách (người thứ {first} "
                           "và người thứ {second})."),
}

# The web console (bot/web/labels.py builds its nested dict from these).
WORDS.update({
    "web.lang": "vi", "web.app": "edudesk", "web.queue": "Hàng đợi", "web.registry": "Danh bạ",
    "web.whoami": "Tài khoản", "web.logout": "Đăng xuất", "web.login": "Đăng nhập",
    "web.all_open": "Tất cả yêu cầu đang mở", "web.all_kinds": "Mọi loại", "web.state": "Trạng thái",
    "web.kind": "Loại", "web.population": "Đối tượng", "web.people": "Số người", "web.deadline": "Hạn xử lý",
    "web.overdue_only": "Chỉ quá hạn", "web.search": "Tìm", "web.search_hint": "Số YC, người gửi, họ tên, mã số",
    "web.filter": "Lọc", "web.no_requests": "Không có yêu cầu nào.", "web.overdue": "quá hạn", "web.left": "còn",
    "web.hours": "giờ", "web.minutes": "phút", "web.number": "Số", "web.sender": "Người gửi",
    "web.open_requests": "yêu cầu", "web.persons": "Danh sách người", "web.row": "STT", "web.full_name": "Họ và tên",
    "web.person_id": "Mã số", "web.date_of_birth": "Ngày sinh", "web.unit_class": "Lớp / đơn vị",
    "web.mobile": "Điện thoại", "web.address": "Địa chỉ đề xuất", "web.findings": "Kết quả kiểm tra",
    "web.audit": "Nhật ký xử lý", "web.time": "Thời gian", "web.actor": "Người thực hiện", "web.action": "Thao tác",
    "web.detail": "Chi tiết", "web.mails": "Thư gốc", "web.download_eml": "Tải thư gốc (.eml)",
    "web.download_csv": "Tải danh sách (CSV)", "web.reason": "Lý do", "web.other_reason": "Lý do khác",
    "web.send": "Gửi", "web.back": "« Hàng đợi", "web.done_flash": "Đã ghi nhận.", "web.assign": "Giao cho",
    "web.assign_button": "Giao việc", "web.nobody": "(chưa giao)", "web.changed": "Yêu cầu vừa thay đổi.",
    "web.reload": "Tải lại", "web.roles": "Vai trò", "web.email": "Thư điện tử", "web.telegram": "Telegram",
    "web.session_until": "Phiên đăng nhập đến", "web.yes": "có", "web.no": "không", "web.prev": "‹ Trước",
    "web.next": "Sau ›", "web.page": "Trang", "web.results": "kết quả", "web.all_populations": "Mọi đối tượng",
    "web.cohort": "Khóa", "web.registry_hint": "Họ tên (có hoặc không dấu) hoặc mã số", "web.bye": "Đã đăng xuất.",
    "web.login_title": "Đăng nhập bảng điều khiển",
    "web.login_how": ("Bảng điều khiển không dùng mật khẩu. Để đăng nhập, Anh/Chị cần một "
                      "liên kết đăng nhập dùng một lần:"),
    "web.login_ways.1": "gõ /login cho bot Telegram của phòng;",
    "web.login_ways.2": "hoặc dùng liên kết in ra khi hệ thống khởi động lần đầu (quản trị viên);",
    "web.login_ways.3": "hoặc nhờ quản trị viên tạo liên kết bằng dòng lệnh trên máy chủ.",
    "web.login_reopen": "Nếu Anh/Chị đã đăng nhập rồi, mở lại trang:",
    "web.login_confirm": "Bấm nút dưới đây để đăng nhập. Liên kết chỉ dùng được một lần.",
    "web.refused_title": "Yêu cầu bị từ chối",
    "web.csrf_refused": "Biểu mẫu không hợp lệ hoặc đã cũ (kiểm tra bảo mật không đạt). "
                        "Vui lòng tải lại trang rồi thử lại.",
    "web.not_found": "Không tìm thấy trang này.", "web.error_title": "Có lỗi",
    "web.no_role": "Tài khoản của Anh/Chị chưa được cấp vai trò nào nên chưa xem được yêu cầu. Hãy đề nghị quản trị "
                   "viên cấp vai trò (edudesk staff add ... --role ...).",
    "web.bad_form": "Biểu mẫu không hợp lệ; vui lòng tải lại trang.",
    "web.pw_used_hint": ("Nếu chính Anh/Chị vừa mở liên kết này, mật khẩu đã hiện ở lần mở đó; hãy dùng mật khẩu "
                         "đã ghi lại. Nếu không phải Anh/Chị đã mở, vui lòng trả lời thư đã nhận ngay để được hỗ trợ."),
    "web.source.smtp": "SMTP", "web.source.imap": "IMAP", "web.source.cli": "dòng lệnh",
})

# School records (bot/web/records.py, templates/web/records*.html.j2).
WORDS.update({
    "rec.nav": "Học bạ số", "rec.badge": "{n} học bạ chờ Thầy/Cô ký", "rec.title": "Học bạ số",
    "rec.my_turns": "Học bạ chờ tôi ký", "rec.class": "Lớp", "rec.stage": "Bước",
    "rec.open": "Chờ ký", "rec.waiting": "Chưa đến lượt", "rec.in_session": "Đang ký", "rec.sign_now": "Ký ngay",
    "rec.no_turns": "Không có học bạ nào chờ Thầy/Cô ký.", "rec.see_list": "Xem danh sách",
    "rec.credential": "Chứng thư số", "rec.no_credential": "Thầy/Cô chưa có chứng thư số được duyệt.",
    "rec.register": "Đăng ký chứng thư số", "rec.blocking": "Ai đang chờ ký",
    "rec.nobody_blocking": "Không còn ai đang chờ ký.",
    "rec.remind_all": "Nhắc tất cả", "rec.quiet": "Giờ yên lặng (không gửi tin nhắc)",
    "rec.quiet_now": "Đang trong giờ yên lặng: tin nhắc sẽ gửi lúc", "rec.sends_now": "Tin nhắc được gửi ngay.",
    "rec.reminded": "Đã nhắc {n} giáo viên; tin nhắn gửi lúc {at}.", "rec.classes": "Các lớp",
    "rec.year": "Năm học", "rec.records": "Học bạ", "rec.signed": "Đã ký xong", "rec.confirm": "Xác nhận hoàn tất",
    "rec.returns": "Báo sai sót chờ duyệt", "rec.no_returns": "Không có báo sai sót nào chờ duyệt.",
    "rec.student": "Học sinh", "rec.reported_by": "Người báo",
    "rec.approve_return": "Duyệt huỷ, làm lại", "rec.refuse_return": "Không huỷ, ký tiếp",
    "rec.pending_creds": "Chứng thư số chờ duyệt", "rec.no_pending_creds": "Không có chứng thư số nào chờ duyệt.",
    "rec.teacher": "Giáo viên", "rec.subject": "Chủ thể", "rec.expires": "Hết hạn", "rec.checks": "Kiểm tra",
    "rec.approve": "Duyệt", "rec.reject": "Từ chối", "rec.student_code": "Mã học sinh", "rec.signatures": "Chữ ký",
    "rec.mine": "Bước của tôi", "rec.report": "Báo sai sót", "rec.report_title": "Báo sai sót",
    "rec.report_hint": "Chọn học bạ có sai sót, ghi rõ cần sửa gì; học bạ đó dừng ký cho đến khi quản trị viên "
                       "quyết định.",
    "rec.reason_hint": "Ví dụ: sai điểm môn Ngữ văn học kì II", "rec.back": "« Học bạ số",
    "rec.creds_title": "Chứng thư số của tôi", "rec.kind": "Loại", "rec.pkcs12_file": "Tệp chứng thư số (.p12 / .pfx)",
    "rec.passphrase": "Mật khẩu của tệp",
    "rec.smartca_user": "Mã thuê bao VNPT SmartCA (số CCCD hoặc mã người dùng)",
    "rec.no_creds": "Thầy/Cô chưa đăng ký chứng thư số nào.", "rec.registered": "Đã đăng ký; chờ quản trị viên duyệt.",
    "rec.not_teacher": "Thầy/Cô không có trong danh sách giáo viên ký học bạ.",
    "rec.no_file": "Hãy chọn tệp chứng thư số.",
    "rec.verify": "Kiểm tra chữ ký", "rec.verify_title": "Kiểm tra chữ ký học bạ (PDF)",
    "rec.pdf_file": "Tệp học bạ (PDF)", "rec.verify_button": "Kiểm tra",
    "rec.verify_hint": "Tệp tối đa 20 MB; tệp không được lưu lại.", "rec.no_pdf": "Hãy chọn một tệp PDF.",
    "rec.ok": "ĐẠT: mọi chữ ký đều hợp lệ", "rec.failed": "KHÔNG ĐẠT", "rec.field": "Trường", "rec.role": "Vai trò",
    "rec.signer": "Người ký", "rec.signed_at": "Thời điểm ký", "rec.intact": "Nguyên vẹn", "rec.trusted": "Tin cậy",
    "rec.changes_after": "Sau chữ ký", "rec.problems": "Vấn đề",
    "rec.demo_ca": "Chưa cấu hình [records] trusted_roots: đang tin cậy CA thử nghiệm của `edudesk records demo`.",
    "rec.text_report": "Báo cáo dạng chữ", "rec.session": "Phiên ký",
    "rec.nothing": "Anh/Chị không có việc nào về học bạ số.",
    "rec.disabled": "Học bạ số chưa được bật trên máy chủ này.",
    "rec.kinds.pkcs12": "Tệp chứng thư số (PKCS#12)", "rec.kinds.smartca": "VNPT SmartCA",
    "rec.record_states.signing": "Đang ký", "rec.record_states.returned": "Đã báo sai sót",
    "rec.record_states.signed": "Đã ký xong",
    "rec.class_states.signing": "Đang ký", "rec.class_states.complete": "Đã ký đủ, chờ xác nhận",
    "rec.class_states.confirmed": "Đã xác nhận", "rec.class_states.exported": "Đã xuất",
    "rec.step_states.waiting": "Chưa đến lượt", "rec.step_states.open": "Chờ ký", "rec.step_states.signed": "Đã ký",
    "rec.cred_states.pending": "Chờ duyệt", "rec.cred_states.approved": "Đã duyệt",
    "rec.cred_states.rejected": "Bị từ chối", "rec.cred_states.revoked": "Đã thay thế",
    "rec.session_states.queued": "đang ký…", "rec.session_states.pending": "chờ Thầy/Cô xác nhận trên ứng dụng ký số",
    "rec.session_states.done": "đã ký xong", "rec.session_states.refused": "không ký được",
    "rec.stages.1": "Giáo viên bộ môn", "rec.stages.2": "Giáo viên chủ nhiệm", "rec.stages.3": "Ban giám hiệu",
    "rec.stages.4": "Ký phát hành",
    "rec.yes": "Đạt", "rec.no": "Không đạt",
})

# Chat links and one-time action links (bot/web/actions.py, templates/web/action.html.j2, whoami).
WORDS.update({
    "links.zalo": "Zalo", "links.linked": "đã liên kết", "links.not_linked": "chưa liên kết",
    "links.get_code": "Lấy mã liên kết {surface}",
    "links.code_is": "Mã liên kết: {code} — gửi cho bot {surface} của trường tin nhắn «/lienket {code}» trong "
                     "{minutes} phút.",
    "links.notify_via": "Nhận thông báo qua", "links.auto": "Tự động (kênh chat đã liên kết)",
    "links.by_email": "Thư điện tử", "links.save": "Lưu", "links.saved": "Đã lưu cách nhận thông báo.",
    "links.act_title": "Xác nhận thao tác", "links.act_for": "Thao tác của {name}",
    "links.act_once": "Liên kết chỉ dùng được một lần.", "links.act_expires": "Hết hạn lúc {when}.",
    "links.act_button": "Xác nhận", "links.act_done": "Đã thực hiện", "links.act_refused": "Không thực hiện được",
    "links.actions.approve": "Hợp lệ: yêu cầu YC-{target}",
    "links.actions.provision": "Thực hiện trên hệ thống: YC-{target}",
    "links.actions.rec_sign": "Ký ngay học bạ lớp {klass}",
    "workflow.refused": "Không thể {step} khi yêu cầu đang ở trạng thái «{state}».",
    "workflow.step.reply": "nhận thư trả lời",
    "workflow.step.reply_with_form": "nhận phiếu đã sửa",
    "workflow.step.ask_info": "yêu cầu bổ sung",
    "workflow.step.approve": "xác nhận hợp lệ",
    "workflow.step.reject": "từ chối",
    "workflow.step.provision": "thực hiện trên hệ thống",
    "workflow.step.provisioned": "ghi nhận đã thực hiện",
    "workflow.step.provision_failed": "ghi nhận thực hiện lỗi",
})

# OAuth2 mailboxes (mailer/oauth.py MailAuthError) and `edudesk mail check` (cli/mailcheck.py).
WORDS.update({
    "error.mail_auth": "Không đăng nhập được hộp thư bằng OAuth2.",
    "error.config_mail_oauth": "Cấu hình OAuth2 của hộp thư ([mail_oauth]) chưa đúng.",
    "mailauth.unreachable": "Không liên lạc được máy chủ cấp mã truy cập (token) cho hộp thư {mailbox}: {detail}. "
                            "Kiểm tra mạng, tường lửa và proxy của máy chủ edudesk; edudesk sẽ tự thử lại.",
    "mailauth.microsoft.7000215": "Khoá bí mật (client secret) của ứng dụng {client_id} không đúng. Trong Entra ID → "
                                  "App registrations → ứng dụng → Certificates & secrets, tạo khoá mới và đặt phần "
                                  "Value (không phải Secret ID) vào biến môi trường mà mail_oauth.client_secret_env "
                                  "chỉ tới.",
    "mailauth.microsoft.7000222": "Khoá bí mật (client secret) của ứng dụng {client_id} đã hết hạn. Tạo khoá mới trong "
                                  "Entra ID → App registrations → Certificates & secrets và đặt phần Value vào biến "
                                  "môi trường mà mail_oauth.client_secret_env chỉ tới.",
    "mailauth.microsoft.700016": "Không có ứng dụng {client_id} trong tenant {tenant}. Kiểm tra mail_oauth.client_id "
                                 "(Application (client) ID) và mail_oauth.tenant_id (Directory (tenant) ID) ở trang "
                                 "Overview của ứng dụng trong Entra ID.",
    "mailauth.microsoft.90002": "Không có tenant {tenant} trên Microsoft Entra ID. Kiểm tra mail_oauth.tenant_id "
                                "(Directory (tenant) ID) và mail_oauth.login_url.",
    "mailauth.microsoft.65001": "Quản trị viên chưa đồng ý cấp quyền cho ứng dụng {client_id}. Trong Entra ID → App "
                                "registrations → API permissions, bấm «Grant admin consent» cho IMAP.AccessAsApp và "
                                "SMTP.SendAsApp (Office 365 Exchange Online).",
    "mailauth.microsoft.7000112": "Ứng dụng {client_id} đã bị tắt. Bật lại trong Entra ID → Enterprise applications → "
                                  "ứng dụng → Properties («Enabled for users to sign-in»).",
    "mailauth.microsoft.700027": "Microsoft không nhận chữ ký bằng chứng thư của ứng dụng {client_id}: chứng thư chưa "
                                 "được tải lên ứng dụng, đã hết hạn, hoặc thumbprint không khớp. Tải phần công khai "
                                 "của chứng thư lên Entra ID → App registrations → Certificates & secrets và kiểm tra "
                                 "mail_oauth.certificate_thumbprint.",
    "mailauth.microsoft.700024": "Thời điểm ghi trong chữ ký bằng chứng thư không hợp lệ: đồng hồ máy chủ edudesk đang "
                                 "lệch giờ. Đồng bộ giờ (NTP) rồi thử lại.",
    "mailauth.microsoft.7000216": "Chưa có khoá bí mật hay chứng thư cho ứng dụng {client_id}: đặt biến môi trường mà "
                                  "mail_oauth.client_secret_env (hoặc mail_oauth.certificate_env) chỉ tới.",
    "mailauth.microsoft.1002012": "Microsoft không nhận phạm vi quyền (scope) edudesk xin: {detail}",
    "mailauth.microsoft.bad_certificate": "Không dùng được khoá riêng của chứng thư trong mail_oauth.certificate_env: "
                                          "{detail}",
    "mailauth.microsoft.other": "Microsoft từ chối cấp mã truy cập (token) cho ứng dụng {client_id}: {detail}",
    "mailauth.microsoft.refused": "Máy chủ {protocol} của Microsoft 365 từ chối mã truy cập của ứng dụng {client_id} "
                                  "cho hộp thư {mailbox} ({detail}). Cần: quyền ứng dụng IMAP.AccessAsApp (nhận thư) "
                                  "và SMTP.SendAsApp (gửi thư) của Office 365 Exchange Online, đã được quản trị viên "
                                  "đồng ý (Grant admin consent); rồi trong Exchange Online PowerShell: "
                                  "New-ServicePrincipal -AppId {client_id} -ObjectId <Object ID ở Enterprise "
                                  "applications>, Add-MailboxPermission -Identity {mailbox} -User <Object ID> "
                                  "-AccessRights FullAccess, và để gửi thư Add-RecipientPermission -Identity "
                                  "{mailbox} -Trustee <Object ID> -AccessRights SendAs. Quyền mới có thể mất đến 30 "
                                  "phút mới có hiệu lực.",
    "mailauth.google.unauthorized_client": "Tài khoản dịch vụ (client ID {client_id}) chưa được ủy quyền trên toàn "
                                           "miền cho phạm vi https://mail.google.com/. Trong Google Admin → Bảo mật → "
                                           "Kiểm soát truy cập và dữ liệu → Kiểm soát API → Ủy quyền trên toàn miền, "
                                           "thêm client ID {client_id} với phạm vi https://mail.google.com/ (có thể "
                                           "mất từ vài phút đến 24 giờ mới có hiệu lực).",
    "mailauth.google.invalid_signature": "Google không nhận khoá của tài khoản dịch vụ (client ID {client_id}): khoá "
                                         "đã bị xoá hoặc thu hồi. Tạo khoá JSON mới trong Google Cloud Console → IAM "
                                         "→ Service accounts → Keys và đặt vào biến môi trường mà "
                                         "mail_oauth.google_credentials_env chỉ tới.",
    "mailauth.google.invalid_subject": "Google không cho ủy quyền vào hộp thư {mailbox}: địa chỉ không thuộc Google "
                                       "Workspace của trường, hoặc đã bị xoá hay tạm ngưng. Kiểm tra "
                                       "mail_oauth.mailbox (hoặc imap.username).",
    "mailauth.google.clock": "Google từ chối vì đồng hồ máy chủ edudesk lệch giờ. Đồng bộ giờ (NTP) rồi thử lại.",
    "mailauth.google.bad_key": "Khoá tài khoản dịch vụ Google trong mail_oauth.google_credentials_env không dùng "
                               "được: {detail}",
    "mailauth.google.other": "Google từ chối cấp mã truy cập (token) cho hộp thư {mailbox}: {detail}",
    "mailauth.google.refused": "Máy chủ {protocol} của Google từ chối mã truy cập cho hộp thư {mailbox} ({detail}). "
                               "Kiểm tra ủy quyền trên toàn miền của client ID {client_id} có phạm vi "
                               "https://mail.google.com/, và IMAP đã được bật cho người dùng trong Google Admin.",
    "mailcheck.title": "Kiểm tra hộp thư {mailbox} — {method}",
    "mailcheck.password": "đăng nhập bằng mật khẩu",
    "mailcheck.oauth": "OAuth2 {provider} ({mechanism})",
    "mailcheck.provider.microsoft": "Microsoft 365",
    "mailcheck.provider.google": "Google Workspace",
    "mailcheck.ok": "OK",
    "mailcheck.fail": "LỖI",
    "mailcheck.skip": "--",
    "mailcheck.fix": "Cách sửa: {fix}",
    "mailcheck.token": "Lấy mã truy cập (token) từ {provider}, dùng được đến {until}",
    "mailcheck.token_failed": "Lấy mã truy cập (token) từ {provider}",
    "mailcheck.imap_connect": "IMAP {host}:{port}: kết nối",
    "mailcheck.imap_login": "IMAP: đăng nhập {user} ({how})",
    "mailcheck.imap_folder": "IMAP: mở thư mục {folder} (chỉ đọc): {count} thư",
    "mailcheck.imap_folder_failed": "IMAP: mở thư mục {folder}",
    "mailcheck.imap_off": "IMAP: chưa cấu hình ([imap].username trống), bỏ qua",
    "mailcheck.smtp_connect": "SMTP {host}:{port}: kết nối{tls}",
    "mailcheck.starttls": ", STARTTLS",
    "mailcheck.smtp_login": "SMTP: đăng nhập {user} ({how}), không gửi thư nào",
    "mailcheck.smtp_no_login": "SMTP: không đăng nhập ([outgoing].smtp_username trống)",
    "mailcheck.smtp_off": "SMTP: không dùng (thư gửi đi được ghi vào thư mục {path})",
    "mailcheck.all_ok": "Mọi bước đều ổn.",
    "mailcheck.failed": "Có {count} bước lỗi: sửa theo hướng dẫn ở trên rồi chạy lại «edudesk mail check».",
    "mailcheck.fix_connect": "Kiểm tra host, port, ssl/starttls trong [{section}] và tường lửa giữa edudesk với "
                             "máy chủ thư ({detail}).",
    "mailcheck.fix_password": "Kiểm tra tên đăng nhập và mật khẩu (biến môi trường {env}) ({detail}). Microsoft 365 "
                              "đã tắt đăng nhập bằng mật khẩu: dùng auth = \"oauth2\" và [mail_oauth].",
    "mailcheck.fix_folder": "Không mở được thư mục {folder} ({detail}): sửa [imap].mailbox.",
    "mailcheck.fix_mechanism": "Máy chủ không nhận cơ chế {mechanism} (máy chủ có: {offered}): đặt "
                               "[mail_oauth].mechanism = \"xoauth2\" hoặc kiểm tra máy chủ.",
    "mailcheck.fix_config": "{detail}",
})

# Sender policy (issue 15): an unverified school sender confirms through the registry's personal address;
# official business from free mail (Circular 53/2012).
WORDS.update({
    "card.send_confirm": "Gửi liên kết xác nhận",
    "card.flag.unverified_sender": "Người gửi chưa được xác minh: cần xác nhận qua địa chỉ cá nhân trong hồ sơ",
    "card.flag.sender_confirmed": "Người gửi đã xác nhận qua địa chỉ cá nhân trong hồ sơ",
    "card.flag.free_mail_official": "Công việc chính thức gửi từ hộp thư miễn phí (Thông tư 53/2012)",
    "event.request_confirm_sent": "Gửi liên kết xác nhận người gửi",
    "event.request_sender_confirmed": "Người gửi đã xác nhận qua liên kết",
    "event.sender_confirmation_refused": "Liên kết xác nhận bị từ chối",
    "detail.people": "Người cần xác nhận",
    "detail.person": "Người xác nhận",
    "detail.sent_to": "Gửi tới",
    "detail.expires": "Hết hạn",
    "detail.sent_by": "Người gửi liên kết",
    "detail.complete": "Đủ người xác nhận",
    "detail.client": "Địa chỉ máy",
    "error.unverified_sender": "Người gửi chưa được xác minh: hãy gửi liên kết xác nhận trước; yêu cầu này không "
                               "thể duyệt bằng một lần bấm.",
    "error.confirm_not_open": "Chỉ gửi được liên kết xác nhận khi yêu cầu đang chờ văn phòng kiểm tra.",
    "error.confirm_not_needed": "Yêu cầu này không cần xác nhận người gửi.",
    "error.no_personal_address": "Hồ sơ không có địa chỉ thư cá nhân để gửi liên kết xác nhận.",
    "error.confirm_link_refused": "Liên kết xác nhận không hợp lệ, đã được dùng hoặc đã hết hạn.",
    "confirm.why.none": "không có kết quả DMARC/DKIM từ máy chủ tin cậy (thiếu kết quả không được coi là đạt)",
    "confirm.why.fail": "DMARC không đạt",
    "confirm.why.misaligned": "chữ ký DKIM/SPF không cùng tên miền với địa chỉ người gửi (DMARC không khớp)",
    "confirm.problem": "Thư {kind} ghi người gửi là địa chỉ của trường nhưng chưa xác minh được người gửi: {why}. "
                       "Cần gửi liên kết xác nhận tới địa chỉ cá nhân trong hồ sơ trước khi duyệt.",
    "confirm.problem_reply": "Thư trả lời có phiếu mới làm thay đổi yêu cầu, ghi người gửi là địa chỉ của trường "
                             "nhưng chưa xác minh được người gửi: {why}. Cần gửi liên kết xác nhận tới địa chỉ cá "
                             "nhân trong hồ sơ trước khi duyệt.",
    "confirm.blocked": "YC-{id}: người gửi chưa được xác minh. Hãy gửi liên kết xác nhận tới địa chỉ cá nhân trong "
                       "hồ sơ trước; yêu cầu này không thể duyệt bằng một lần bấm.",
    "confirm.waiting": "YC-{id}: đã gửi liên kết xác nhận, đang chờ người nhận bấm xác nhận; chưa thể duyệt.",
    "confirm.not_allowed": "Chỉ cán bộ văn phòng, trưởng bộ phận và quản trị viên mới gửi được liên kết xác nhận.",
    "confirm.stale": "Yêu cầu YC-{id} vừa thay đổi; vui lòng xem lại thẻ mới nhất.",
    "confirm.not_open": "YC-{id} đang ở trạng thái «{state}»: chỉ gửi liên kết xác nhận khi yêu cầu đang chờ văn "
                        "phòng kiểm tra.",
    "confirm.not_needed": "YC-{id} không cần xác nhận người gửi (người gửi đã được xác minh hoặc đã xác nhận).",
    "confirm.no_address": "Hồ sơ của trường không có địa chỉ thư cá nhân của {names}: không gửi được liên kết xác "
                          "nhận cho YC-{id}. Hãy xác minh bằng cách khác (gặp trực tiếp, gọi số điện thoại trong hồ "
                          "sơ) rồi từ chối hoặc yêu cầu bổ sung, và bổ sung địa chỉ cá nhân vào danh sách của "
                          "trường.",
    "confirm.no_entry": "Không tìm thấy {names} trong danh sách cán bộ, sinh viên của trường: không có địa chỉ thư "
                        "cá nhân để gửi liên kết xác nhận cho YC-{id}. Hãy xác minh bằng cách khác rồi từ chối hoặc "
                        "yêu cầu bổ sung.",
    "confirm.sent": "Đã gửi liên kết xác nhận YC-{id} tới địa chỉ cá nhân trong hồ sơ của {names} ({addresses}); "
                    "liên kết có hiệu lực đến {when}.",
    "confirm.refused.invalid": "Liên kết xác nhận không hợp lệ hoặc đã được dùng (mỗi liên kết chỉ dùng được một "
                               "lần).",
    "confirm.refused.expired": "Liên kết xác nhận đã hết hạn. Nếu Anh/Chị đã gửi yêu cầu này, vui lòng liên hệ văn "
                               "phòng để được gửi liên kết mới.",
    "confirm.notice_done": "<b>YC-{id}</b>: {name} đã xác nhận yêu cầu qua liên kết gửi tới địa chỉ cá nhân trong "
                           "hồ sơ; yêu cầu có thể được duyệt.",
    "confirm.notice_partial": "<b>YC-{id}</b>: {name} đã xác nhận yêu cầu; còn chờ {left} người xác nhận.",
    "freemail.problem": "Theo Thông tư 53/2012/TT-BGDĐT, công việc chính thức ({kind}) phải được gửi từ địa chỉ "
                        "thư điện tử chính thức của trường hoặc đơn vị, không dùng hộp thư miễn phí ({domain}).",
    "freemail.refused": "Theo Thông tư 53/2012/TT-BGDĐT của Bộ Giáo dục và Đào tạo, yêu cầu {kind} là công việc "
                        "chính thức, phải được gửi từ địa chỉ thư điện tử chính thức của trường hoặc đơn vị "
                        "({domains}). Thư gửi từ hộp thư miễn phí ({domain}) không được tiếp nhận; vui lòng gửi lại "
                        "yêu cầu từ địa chỉ thư chính thức.",
    "freemail.label": "Từ chối khi tiếp nhận: gửi từ hộp thư miễn phí (Thông tư 53/2012)",
    "links.actions.send_confirm": "Gửi liên kết xác nhận người gửi: YC-{target}",
    "web.confirm.title": "Xác nhận yêu cầu",
    "web.confirm.what": "Yêu cầu {kind} số YC-{number}, gửi từ địa chỉ {sender}.",
    "web.confirm.for": "Người xác nhận: {name}.",
    "web.confirm.ask": "Nếu đúng Anh/Chị đã gửi (hoặc đồng ý với) yêu cầu này, hãy bấm nút dưới đây. Nếu không, "
                       "đừng bấm và hãy báo ngay cho văn phòng.",
    "web.confirm.expires": "Liên kết dùng được một lần, đến {when}.",
    "web.confirm.button": "Tôi xác nhận",
    "web.confirm.done_title": "Đã xác nhận",
    "web.confirm.done": "Cảm ơn Anh/Chị. Văn phòng sẽ tiếp tục xử lý yêu cầu YC-{number}.",
    "web.confirm.refused_title": "Không dùng được liên kết",
})

WORDS.update({
    # mail inspect: one line about the sender, from the trusted Authentication-Results (issue 15)
    "cli.inspect.sender_verified": "Người gửi: đã xác minh (SPF: {spf}, DKIM: {dkim}, DMARC: {dmarc})",
    "cli.inspect.sender_unverified": "Người gửi: chưa xác minh được (SPF: {spf}, DKIM: {dkim}, DMARC: {dmarc})",
    "cli.inspect.sender_unknown": "Người gửi: không có kết quả xác thực (SPF/DKIM/DMARC) từ máy chủ đáng tin cậy",
    # Progress bars of long command-line work (cli/progress.py): what is being done, and what is counted.
    "cli.progress.registry": "Nhập danh sách",
    "cli.progress.registry.unit": "người",
    "cli.progress.records_import": "Nhập học bạ",
    "cli.progress.records_import.unit": "học bạ",
    "cli.progress.records_demo": "Tạo học bạ mẫu",
    "cli.progress.records_demo.unit": "học bạ",
    "cli.progress.records_sign": "Ký học bạ mẫu",
    "cli.progress.records_sign.unit": "chữ ký",
    "cli.progress.records_export": "Xuất học bạ",
    "cli.progress.records_export.unit": "học bạ",
})

WORDS.update({
    # edudesk init, CLI mistakes, requests show, db migrate (issue 16)
    "error.init": "Không ghi được tệp cấu hình.",
    "cli.init.ask.lang": "Ngôn ngữ của thư và tin nhắn (vi/en)",
    "cli.init.ask.name": "Tên đầy đủ của trường (ví dụ: Trường THPT Chu Văn An)",
    "cli.init.ask.short_name": "Tên ngắn của trường",
    "cli.init.ask.domain": "Tên miền thư của cán bộ (ví dụ: truong.edu.vn)",
    "cli.init.ask.student_domain": "Tên miền thư của học sinh, sinh viên",
    "cli.init.ask.office_address": "Hộp thư của bộ phận CNTT mà mọi người gửi yêu cầu tới",
    "cli.init.ask.office_unit": "Tên đơn vị CNTT, ghi trong thư",
    "cli.init.ask.naming_rule": "Quy tắc đặt địa chỉ thư",
    "cli.init.ask.staff_form": "Tên mẫu phiếu đăng ký của cán bộ",
    "cli.init.ask.student_form": "Tên mẫu phiếu đăng ký của học sinh, sinh viên",
    "cli.init.ask.list_form": "Tên mẫu danh sách học sinh, sinh viên mới",
    "cli.init.default_unit": "Phòng Công nghệ thông tin",
    "cli.init.missing": "Thiếu {flag}: hãy chạy lệnh trong terminal để trả lời câu hỏi, hoặc thêm {flag} vào lệnh.",
    "cli.init.bad_domain": "'{value}' không phải tên miền thư (ví dụ: truong.edu.vn).",
    "cli.init.bad_address": "'{value}' không phải địa chỉ thư (ví dụ: cntt@truong.edu.vn).",
    "cli.init.bad_rule": "Quy tắc đặt địa chỉ '{value}' không dùng được; chỉ dùng các trường {fields}.",
    "cli.init.bad_lang": "'{value}': chọn vi hoặc en.",
    "cli.init.exists": "Tệp {path} đã có; không ghi đè. Thêm --force để ghi đè, hoặc --config TỆP_KHÁC.",
    "cli.init.is_dir": "{path} là một thư mục, không phải tệp cấu hình.",
    "cli.init.no_folder": "Thư mục {path} không tồn tại.",
    "cli.init.office_outside": "Lưu ý: hộp thư {address} không thuộc tên miền của trường ({domains}).",
    "cli.init.written": "Đã ghi {path} cho {name}: cán bộ @{staff}, học sinh/sinh viên @{student}, hộp thư {office}.",
    "cli.init.next": "Tiếp theo: edudesk db migrate, rồi edudesk registry import examples/registry-students.csv "
                     "--population student, rồi edudesk run.",
    "cli.error.bad_date": "'{value}' không phải ngày dạng YYYY-MM-DD (ví dụ: 2025-09-01)",
    "cli.error.port_in_use": "Cổng {port} đang có chương trình khác dùng; đổi {setting} trong config.toml "
                             "hoặc dừng chương trình kia.",
    "cli.error.port_setting": "cổng tương ứng",
    "cli.error.no_file": "Không tìm thấy tệp {path}.",
    "cli.error.no_folder": "Thư mục {path} không tồn tại.",
    "cli.error.is_folder": "{path} là một thư mục; cần một tệp.",
    "cli.error.not_folder": "{path} không phải thư mục.",
    "cli.error.no_permission": "Không có quyền truy cập {path}.",
    "cli.error.os": "Không dùng được {path}: {reason}.",
    "cli.error.database": "Không mở được cơ sở dữ liệu {where}: {reason}",
    "cli.error.unexpected": "Lỗi không lường trước ({kind}: {reason}); chạy lại với --debug để xem chi tiết.",
    "cli.show.state": "Trạng thái",
    "cli.show.sender": "Người gửi",
    "cli.show.subject": "Tiêu đề",
    "cli.show.received": "Nhận lúc",
    "cli.show.deadline": "Hạn xử lý",
    "cli.show.unit": "Đơn vị",
    "cli.show.flags": "Cảnh báo",
    "cli.show.persons": "Người trong yêu cầu ({count})",
    "cli.show.problems": "Lỗi của yêu cầu ({count})",
    "cli.show.no_problems": "Không có lỗi.",
    "cli.show.audit": "Nhật ký",
    "cli.show.row": "dòng {row}",
    "cli.run.unconfigured": ("edudesk: cảnh báo: chưa cấu hình [institution]; thư và trang đang mang tên trường ví "
                           "dụ «{name}». Chạy `edudesk init` để ghi cấu hình của trường mình."),
    "cli.migrate.created": "edudesk: đã tạo cơ sở dữ liệu mới {where} ({tables} bảng, {migrations} bước chuyển đổi).",
    "cli.migrate.applied": "edudesk: đã áp dụng {migrations} bước chuyển đổi mới cho {where} (nay có {tables} bảng).",
    "cli.migrate.up_to_date": "edudesk: cơ sở dữ liệu {where} đã mới nhất ({migrations} bước chuyển đổi); "
                              "không có gì thay đổi.",
})

# Checks the office can rely on (issue 15): rows held back until approved, "Hợp lệ" over a ✗ asks once more,
# the account's display name, keeping a leaver's account during the grace period.
WORDS.update({
    "rows.duplicate_in_list": "Trùng với dòng {other} của danh sách.",
    "rows.skipped": "Chưa duyệt dòng có lỗi",
    "rows.mismatch_name": "Dòng {row}: họ tên «{form}» ≠ «{registry}» theo danh sách của trường",
    "rows.mismatch_dob": "Dòng {row}: ngày sinh {form} ≠ {registry} theo danh sách của trường",
    "rows.confirm_title": "YC-{id} có thông tin không khớp với danh sách của trường. Bấm «Vẫn xác nhận hợp lệ» "
                          "nếu đã kiểm tra:",
    "rows.confirm_button": "Vẫn xác nhận hợp lệ",
    "rows.not_allowed": "Anh/Chị không có quyền «{action}» (cần vai trò văn phòng).",
    "rows.action.row_approve": "Duyệt dòng có lỗi",
    "rows.action.name_form": "Dùng tên theo phiếu",
    "rows.action.name_registry": "Dùng tên theo danh sách của trường",
    "rows.action.keep_account": "Giữ tài khoản",
    "rows.approve_row": "Duyệt dòng {row}",
    "rows.keep_row": "Giữ tài khoản dòng {row}",
    "rows.no_row": "Yêu cầu YC-{id} không có dòng {row}.",
    "rows.not_now": "Không thể làm việc này với dòng {row} khi YC-{id} đang ở trạng thái «{state}».",
    "rows.nothing_held": "Dòng {row} của YC-{id} không có lỗi cần duyệt.",
    "rows.approved_already": "Dòng {row} của YC-{id} đã được {who} duyệt.",
    "rows.which_row": "YC-{id} có nhiều dòng: hãy ghi số dòng cần giữ tài khoản.",
    "rows.not_waiting": "Tài khoản ở dòng {row} của YC-{id} không còn chờ xoá (đã xoá, đã giữ lại hoặc chưa "
                        "tạm khoá).",
    "rows.approved_by": "đã duyệt: {who}",
    "rows.kept": "Đã giữ lại tài khoản",
    "rows.name_registry": "Tên tài khoản theo danh sách của trường: {name}",
    "rows.name_form": "Tên tài khoản theo phiếu: {name}",
    "card.held": "{n} dòng có lỗi chưa duyệt sẽ không được thực hiện",
    "card.skipped": "{n} dòng chưa duyệt",
    "card.keep": "Giữ tài khoản",
    "event.request_row_approve": "Duyệt dòng có lỗi",
    "event.request_name_form": "Dùng tên theo phiếu",
    "event.request_name_registry": "Dùng tên theo danh sách của trường",
    "event.request_keep_account": "Giữ tài khoản",
    "detail.row": "Dòng",
    "detail.by": "Theo",
    "detail.codes": "Lỗi",
    "detail.mismatch_rows": "Dòng không khớp đã xác nhận",
    "detail.rows": "Dòng đã gửi kết quả",
    "detail.skipped": "Dòng chưa duyệt",
    "workflow.step.row_approved": "duyệt dòng có lỗi",
    "mail.template.report_monthly": "Báo cáo tháng (BM03)",
    "mail.template.kept": "Đã giữ lại tài khoản",
    "mail.template.login_link": "Liên kết đăng nhập",
    # Sign-in by mail and looking before signing (issue 18).
    "event.login_link_requested": "Xin liên kết đăng nhập qua thư",
    "event.login_link_limited": "Xin liên kết đăng nhập quá giới hạn (không gửi thư)",
    "detail.domain": "Tên miền",
    "error.records_changed": "Học bạ đã thay đổi từ khi trang được mở; hãy tải lại trang và ký lại.",
    "web.login_mail_title": "Nhận liên kết đăng nhập qua thư",
    "web.login_mail_how": ("Nhập địa chỉ thư điện tử của trường; hệ thống gửi tới địa chỉ đó một liên kết đăng "
                           "nhập dùng một lần."),
    "web.login_mail_address": "Địa chỉ thư của trường",
    "web.login_mail_send": "Gửi liên kết đăng nhập",
    "web.login_mail_sent": ("Nếu địa chỉ {address} có trong hệ thống, một liên kết đăng nhập đã được gửi tới đó; "
                            "liên kết dùng một lần, hết hạn sau {minutes} phút."),
    "web.login_mail_again": "Không thấy thư? Hãy xem cả mục thư rác, hoặc xin lại sau ít phút.",
    "web.login_other": "Hoặc:",
    "rec.look": "Xem học bạ trước khi ký",
    "rec.covers": "Ký {n} học bạ (bản hiện tại)",
    "rec.version": "bản {v}",
    "rec.pdf_changed": ("Học bạ này đã thay đổi từ khi trang được mở (có người vừa ký, hoặc học bạ được làm lại). "
                        "Thầy/Cô hãy tải lại trang để xem bản hiện tại."),
    "rec.pdf_refused": "Thầy/Cô chỉ mở được học bạ mà mình ký.",
    "error.confirm_mismatch": "Có thông tin không khớp với danh sách của trường; hãy xác nhận lại.",
    "error.no_row": "Yêu cầu không có dòng này.",
    "error.row_not_now": "Không thể làm việc này với dòng đó ở trạng thái hiện tại của yêu cầu.",
    "error.row_nothing_held": "Dòng này không có lỗi cần duyệt.",
    "error.row_approved_already": "Dòng này đã được duyệt.",
    "error.row_which_row": "Yêu cầu có nhiều dòng: hãy ghi số dòng.",
    "error.row_not_waiting": "Tài khoản của dòng này không còn chờ xoá.",
    "cmd.row_syntax": "Cú pháp: /{command} <số yêu cầu> <số dòng>",
    "cmd.row_approved": "✓ YC-{id}: đã duyệt dòng {row}.",
    "cmd.kept": "✓ YC-{id}: đã giữ tài khoản dòng {row}; tài khoản sẽ được mở khoá.",
    "cmd.confirm_with": "Gửi /duyet {id} xacnhan để vẫn xác nhận hợp lệ.",
    "web.row_approve": "Duyệt dòng",
    "web.use_form_name": "Dùng tên theo phiếu",
    "web.use_registry_name": "Dùng tên theo danh sách của trường",
    "web.keep_account": "Giữ tài khoản",
    "web.confirm_approve": "Vẫn xác nhận hợp lệ",
})

# `edudesk backup` and `edudesk restore` (cli/backup.py)
WORDS.update({
    "error.backup": "Sao lưu hoặc khôi phục không thực hiện được.",
    "cli.backup.no_passphrase": "Chưa có cụm mật khẩu sao lưu: đặt biến môi trường {env} (khoá bí mật được niêm "
                                "phong bằng cụm mật khẩu này), hoặc dùng --without-key.",
    "cli.backup.without_key": "Cảnh báo: bản sao lưu không có khoá bí mật; sau khi khôi phục, các mật khẩu đã "
                              "niêm phong sẽ không mở được.",
    "cli.backup.unsigned": "Cảnh báo: chưa đặt cụm mật khẩu sao lưu ({env}), nên bản sao lưu không được ký; khi "
                           "khôi phục phải thêm --unsigned.",
    "cli.backup.no_database": "Không tìm thấy cơ sở dữ liệu {path}.",
    "cli.backup.db_unreachable": "Không đọc được cơ sở dữ liệu {url}: {reason}",
    "cli.backup.tool_missing": "Không tìm thấy lệnh {tool}: hãy cài gói postgresql-client cùng phiên bản với máy "
                               "chủ.",
    "cli.backup.tool_failed": "Lệnh {tool} không thành công: {reason}",
    "cli.backup.cannot_write": "Không ghi được {path}: {reason}",
    "cli.backup.progress_db": "Sao lưu cơ sở dữ liệu",
    "cli.backup.done": "Đã sao lưu {tables} bảng, {rows} dòng vào {path} ({size}).",
    "cli.restore.missing": "Không tìm thấy tệp sao lưu {path}.",
    "cli.restore.not_backup": "{path} không phải bản sao lưu của edudesk.",
    "cli.restore.newer_format": "Bản sao lưu có định dạng {version}, phiên bản edudesk này không đọc được; hãy "
                                "nâng cấp edudesk.",
    "cli.restore.damaged": "Bản sao lưu bị hỏng: phần {member} không khớp mã băm hoặc bị thiếu.",
    "cli.restore.unsigned": "Bản sao lưu không có chữ ký (được lập khi chưa đặt cụm mật khẩu {env}): không "
                            "chứng minh được nó chưa bị sửa. Thêm --unsigned nếu chắc chắn muốn khôi phục.",
    "cli.restore.signed_no_passphrase": "Bản sao lưu có chữ ký: đặt cụm mật khẩu sao lưu vào biến môi trường "
                                        "{env} để kiểm tra.",
    "cli.restore.bad_signature": "Chữ ký của bản sao lưu không khớp: sai cụm mật khẩu (biến {env}) hoặc tệp đã bị "
                                 "sửa. Không khôi phục.",
    "cli.restore.no_passphrase": "Bản sao lưu có khoá bí mật được niêm phong: đặt cụm mật khẩu sao lưu vào biến "
                                 "môi trường {env}.",
    "cli.restore.wrong_passphrase": "Sai cụm mật khẩu sao lưu (biến {env}): không mở được khoá bí mật.",
    "cli.restore.config_refused": "Cấu hình trong bản sao lưu không dùng được: {reason}",
    "cli.restore.dialect": "Bản sao lưu là cơ sở dữ liệu {backup}, nhưng nơi khôi phục là {target}.",
    "cli.restore.not_empty": "Cơ sở dữ liệu {url} đã có dữ liệu ({rows} dòng); thêm --force để ghi đè.",
    "cli.restore.key_differs": "Đã có một khoá bí mật khác ở {path}; thêm --force để thay bằng khoá của bản sao "
                               "lưu.",
    "cli.restore.counts": "Sau khi khôi phục, bảng {table} có {got} dòng, bản sao lưu ghi {expected} dòng.",
    "cli.restore.progress_db": "Khôi phục cơ sở dữ liệu",
    "cli.restore.done": "Đã khôi phục {tables} bảng, {rows} dòng vào {target} (bản sao lưu lúc {created}).",
    "cli.restore.config_written": "Đã ghi cấu hình vào {path}.",
    "cli.restore.key_written": "Đã ghi khoá bí mật vào {path}.",
    "cli.restore.key_env": "Biến môi trường {env} đang chứa một khoá khác: bỏ biến này (để edudesk đọc {path}) "
                           "hoặc đặt nó bằng khoá trong tệp đó.",
    "cli.restore.no_key": "Bản sao lưu không có khoá bí mật: các mật khẩu đã niêm phong sẽ không mở được.",
    "cli.restore.next": "Xong. Chạy: edudesk --config {config} run",
    "cli.restore.next_data_dir": "Xong. Chạy: EDUDESK_GENERAL__DATA_DIR={data_dir} edudesk --config {config} run",
})

# Reports (BM03): the .xlsx and .pdf files, the charts, `edudesk reports`.
WORDS.update({
    "report.title": "Tổng hợp, thống kê kết quả thực hiện cấp TKĐT, cấp lại mật khẩu TKĐT",
    "report.form": "Biểu mẫu: {form}",
    "report.period": "Từ ngày {start} đến ngày {end}",
    "report.made_at": "Lập lúc: {when}",
    "report.unit_filter": "Đơn vị: {unit}",
    "report.all_units": "Tất cả đơn vị",
    "report.nation": "CỘNG HOÀ XÃ HỘI CHỦ NGHĨA VIỆT NAM",
    "report.motto": "Độc lập - Tự do - Hạnh phúc",
    "report.page": "Trang {page}/{pages}",
    "report.sheet_summary": "Tổng hợp",
    "report.sheet_daily": "Theo ngày",
    "report.groups": "1. Yêu cầu theo loại, đối tượng và đơn vị",
    "report.steps": "2. Thời gian xử lý từng bước so với thời hạn",
    "report.slowest": "3. Các yêu cầu xử lý chậm nhất",
    "report.accounts": "4. Tài khoản đã xử lý (theo nhật ký tài khoản)",
    "report.problems": "5. Vấn đề phát hiện khi tiếp nhận (thường gặp nhất)",
    "report.overdue": "6. Yêu cầu quá hạn tại thời điểm cuối kỳ",
    "report.charts": "7. Biểu đồ",
    "report.kind": "Loại yêu cầu",
    "report.population": "Đối tượng",
    "report.unit": "Đơn vị",
    "report.no_unit": "(không ghi đơn vị)",
    "report.no_population": "(chưa rõ)",
    "report.received": "Tiếp nhận",
    "report.approved": "Đã duyệt",
    "report.rejected": "Từ chối",
    "report.done": "Hoàn thành",
    "report.open": "Đang xử lý",
    "report.total": "Tổng cộng",
    "report.finished": "Xử lý xong",
    "report.step": "Bước",
    "report.step.office": "Văn phòng kiểm tra (tiếp nhận → duyệt/từ chối)",
    "report.step.technical": "Kỹ thuật thực hiện (duyệt → hoàn thành)",
    "report.step.total": "Toàn bộ (tiếp nhận → hoàn thành)",
    "report.step_count": "Số yêu cầu qua bước",
    "report.limit_hours": "Thời hạn (giờ)",
    "report.within_limit": "Đúng hạn",
    "report.share_within": "Tỷ lệ đúng hạn",
    "report.median_hours": "Trung vị (giờ)",
    "report.request": "Yêu cầu",
    "report.hours": "Số giờ",
    "report.account_change": "Thao tác",
    "report.count": "Số lượng",
    "report.created": "Tạo mới",
    "report.reset": "Cấp lại mật khẩu",
    "report.suspended": "Tạm khoá",
    "report.deleted": "Xoá",
    "report.failed": "Thao tác không thành công",
    "report.problem": "Vấn đề",
    "report.requests": "Số yêu cầu",
    "report.state": "Trạng thái",
    "report.received_at": "Tiếp nhận lúc",
    "report.deadline": "Hạn xử lý",
    "report.hours_late": "Số giờ trễ",
    "report.day": "Ngày",
    "report.none": "Không có.",
    "report.chart_by_kind": "Yêu cầu theo loại",
    "report.chart_steps": "Tỷ lệ xử lý đúng hạn theo bước (%)",
    "report.chart_daily": "Yêu cầu tiếp nhận và xử lý xong theo ngày",
    "report.overdue_shown": "Liệt kê {shown} yêu cầu trễ nhất trong tổng số {total} yêu cầu quá hạn.",
    "cli.reports.made": "Đã lập báo cáo {form} ({period}{unit}) → {path} ({requests} yêu cầu; lưu trữ số {id}).",
    "cli.reports.of_unit": ", đơn vị {unit}",
    "cli.reports.bad_period": "Ngày bắt đầu {start} sau ngày kết thúc {end}.",
    "cli.reports.bad_file": "Tệp báo cáo phải có đuôi .xlsx hoặc .pdf: {path}",
    "cli.reports.wrong_format": "Báo cáo số {id} là tệp .{fmt}; hãy đặt tên tệp có đuôi .{fmt}.",
    "cli.reports.not_found": "Không có báo cáo số {id} trong kho lưu trữ (xem: edudesk reports list).",
    "cli.reports.written": "Đã ghi báo cáo số {id} ({form} {period}) → {path} ({size}).",
    "cli.reports.none": "Chưa có báo cáo nào được lưu trữ.",
    "cli.reports.head": "Số|Lập lúc|Kỳ báo cáo|Đơn vị|Định dạng|Người lập|Dung lượng",
    "cli.reports.scheduled": "{who} (tự động)",
})


# BM03: the intake's problems as short labels for the report's "most frequent problems".
WORDS.update({
    "bm03.problem.missing_name": "Thiếu họ và tên",
    "bm03.problem.missing_id": "Thiếu mã số sinh viên hoặc mã cán bộ",
    "bm03.problem.invalid_id": "Mã số không hợp lệ",
    "bm03.problem.invalid_date": "Ngày sinh không hợp lệ",
    "bm03.problem.missing_mobile": "Thiếu số điện thoại di động",
    "bm03.problem.invalid_mobile": "Số điện thoại di động không hợp lệ",
    "bm03.problem.invalid_email": "Email cá nhân không hợp lệ",
    "bm03.problem.duplicate_row": "Mã số lặp lại trong danh sách",
    "bm03.problem.duplicate_in_list": "Một người có tên hai lần trong danh sách",
    "bm03.problem.duplicate_request": "Trùng yêu cầu đang xử lý",
    "bm03.problem.not_in_registry": "Mã số không có trong danh sách của trường",
    "bm03.problem.name_mismatch": "Họ tên không khớp với hồ sơ",
    "bm03.problem.name_diacritics": "Họ tên chỉ khác dấu so với hồ sơ",
    "bm03.problem.dob_mismatch": "Ngày sinh không khớp với hồ sơ",
    "bm03.problem.class_mismatch": "Lớp không khớp với hồ sơ",
    "bm03.problem.unit_mismatch": "Đơn vị không khớp với hồ sơ",
    "bm03.problem.has_account": "Đã có tài khoản",
    "bm03.problem.no_account": "Không tìm thấy tài khoản hiện có",
    "bm03.problem.no_form": "Không có phiếu đăng ký",
    "bm03.problem.too_many_rows": "Danh sách dài quá số dòng cho phép",
    "bm03.problem.attachment_too_large": "Tệp đính kèm quá lớn",
    "bm03.problem.hostile_attachment": "Tệp đính kèm không an toàn",
    "bm03.problem.unreadable_attachment": "Không đọc được tệp đính kèm",
    "bm03.problem.unsupported_attachment": "Tệp Word/Excel định dạng cũ",
    "bm03.problem.forwarded": "Phiếu nằm trong thư chuyển tiếp",
    "bm03.problem.external_sender": "Người gửi ngoài trường",
    "bm03.problem.auth_failed": "Thư không qua xác thực (SPF/DKIM/DMARC)",
    "bm03.problem.from_untrusted": "Dòng người gửi (From) không rõ ràng",
    "bm03.problem.spoof_suspected": "Nghi giả mạo địa chỉ của trường",
    "bm03.problem.unverified_sender": "Chưa xác minh được người gửi",
    "bm03.problem.free_mail_official": "Thư công vụ gửi từ hộp thư miễn phí",
})

# The life of a record after signing: corrections, withdrawals, adjustments, revisions (core/signing/changes.py).
WORDS.update({
    "life.kind.correction": "sửa sau báo sai sót", "life.kind.withdrawal": "thu hồi",
    "life.kind.adjustment": "điều chỉnh",
    "rec.record_states.correcting": "Chờ bản đã sửa", "rec.record_states.withdrawn": "Đã thu hồi",
    "rec.class_states.minutes": "Sổ biên bản",
    "rec.life.title": "Sửa, thu hồi, điều chỉnh học bạ",
    "rec.life.intro": ("Học bạ đã ký chỉ thay đổi được theo ba cách dưới đây. Bản cũ luôn được lưu giữ nguyên vẹn "
                       "và vẫn kiểm tra được chữ ký; thu hồi và điều chỉnh cần biên bản do Ban giám hiệu ký số."),
    "rec.life.corrections": "Chờ bản học bạ đã sửa (báo sai sót đã được duyệt huỷ)",
    "rec.life.no_corrections": "Không có học bạ nào chờ bản đã sửa.",
    "rec.life.pdf": "Tệp PDF đã sửa", "rec.life.upload": "Tải lên, ký lại từ đầu",
    "rec.life.upload_help": ("Tệp phải là học bạ chưa ký của đúng học sinh đó (có mã và họ tên học sinh), tối đa "
                             "{mb} MB. Bản cũ được lưu giữ; học bạ được ký lại từ giáo viên bộ môn."),
    "rec.life.changes": "Biên bản thu hồi, điều chỉnh chờ Ban giám hiệu ký",
    "rec.life.no_changes": "Không có biên bản nào đang chờ ký.",
    "rec.life.number": "Số biên bản", "rec.life.minutes": "Biên bản", "rec.life.signed": "{done}/{total} chữ ký",
    "rec.life.start": "Lập biên bản thu hồi hoặc điều chỉnh học bạ đã phát hành",
    "rec.life.start_help": ("Chọn lớp, ghi mã học sinh và lý do; điều chỉnh cần kèm tệp học bạ đã sửa. Học bạ chỉ "
                            "thay đổi khi Ban giám hiệu đã ký biên bản (hiệu trưởng ký sau cùng)."),
    "rec.life.withdraw": "Thu hồi", "rec.life.adjust": "Điều chỉnh", "rec.life.code": "Mã học sinh",
    "rec.life.pdf_adjust": "Tệp học bạ đã sửa (chỉ khi điều chỉnh)", "rec.life.submit": "Lập biên bản",
    "rec.life.revisions": "Các bản học bạ đã lưu giữ", "rec.life.no_revisions": "Chưa có bản nào được lưu giữ.",
    "rec.life.revision_col": "Bản", "rec.life.revision": "Bản lập lần {n}", "rec.life.signatures": "{n} chữ ký",
    "rec.life.kind": "Vì sao", "rec.life.download": "Tải PDF",
    "rec.life.verify_help": "Kiểm tra chữ ký của một bản đã lưu: tải về rồi mở trang Kiểm tra chữ ký học bạ.",
    "rec.life.only_admin": "Chỉ quản trị viên sửa, thu hồi hoặc điều chỉnh học bạ.",
    "cli.life.replaced": ("Đã thay học bạ của {name} ({code}), lớp {klass} ({year}) bằng bản đã sửa: bản lập lần "
                          "{n}; bản trước được lưu giữ. Học bạ được ký lại từ giáo viên bộ môn."),
    "cli.life.withdrawal": ("Đã lập biên bản thu hồi số {number} cho học bạ của {name} ({code}), lớp {klass} "
                            "({year}); học bạ bị thu hồi khi Ban giám hiệu ký xong biên bản."),
    "cli.life.adjustment": ("Đã lập biên bản điều chỉnh số {number} cho học bạ của {name} ({code}), lớp {klass} "
                            "({year}); khi Ban giám hiệu ký xong biên bản, bản đã sửa được ký lại từ đầu."),
    "cli.life.head": "Học bạ của {name} ({code}), lớp {klass} ({year}):",
    "cli.life.archived": ("  Bản lập lần {n} — {kind} lúc {at}, {by}: {signatures} chữ ký, SHA-256 {sha}…; "
                          "lý do: {reason}"),
    "cli.life.minutes": "    biên bản số {number}, {signatures} chữ ký của Ban giám hiệu",
    "cli.life.current": "  Bản lập lần {n} (hiện tại): {state}, {signatures} chữ ký",
    "event.record_replaced": "Thay học bạ bằng bản đã sửa",
    "event.record_change_started": "Lập biên bản thu hồi, điều chỉnh học bạ",
    "event.record_withdrawn": "Thu hồi học bạ", "event.record_adjusted": "Điều chỉnh học bạ, ký lại",
    "error.not_correcting": ("Chỉ thay được học bạ đã được duyệt huỷ sau báo sai sót; học bạ đã phát hành thì lập "
                             "thu hồi hoặc điều chỉnh."),
    "error.identity_mismatch": "Tệp tải lên không phải học bạ của học sinh này (không thấy mã hoặc họ tên học sinh).",
    "error.pdf_too_large": "Tệp học bạ quá lớn.",
    "error.record_not_issued": "Chỉ thu hồi hoặc điều chỉnh được học bạ đã ký đủ và đã ký phát hành.",
    "error.change_open": "Học bạ này đang có một biên bản chờ Ban giám hiệu ký.",
    "error.no_leadership": "Lớp chưa có ban giám hiệu để ký biên bản.",
    "error.minutes_book": "Không lập được sổ biên bản của lớp: đã có một lớp cùng tên.",
    "error.pdf_missing": "Cần tệp học bạ đã sửa (PDF).",
    "error.record_ambiguous": "Học sinh có học bạ ở nhiều lớp: hãy chọn lớp (--class, --year).",
})


# Records sent to the receiving portal (docs/records-portal.md).
WORDS.update({
    "event.records_portal_requested": "Yêu cầu gửi học bạ lên Cổng tiếp nhận",
    "event.records_portal_sent": "Cổng tiếp nhận trả lời gói học bạ",
    "event.records_portal_failed": "Gửi học bạ lên Cổng tiếp nhận không thành công",
    "error.not_issued": "Lớp chưa được xác nhận hoàn tất nên chưa gửi được.",
    "error.nothing_to_send": "Không còn học bạ nào để gửi.",
    "error.portal_off": "Chưa bật gửi học bạ lên Cổng tiếp nhận.",
    "error.portal_package_invalid": "Không lập được gói hồ sơ đúng định dạng.",
    "error.portal_refused": "Không gửi được học bạ lên Cổng tiếp nhận.",
    "detail.package": "Gói hồ sơ",
    "detail.status": "Mã trả lời HTTP",
    "detail.attempt": "Lần gửi",
    "detail.accepted": "Được nhận",
    "detail.refused": "Bị từ chối",
})


# Long-term signatures (PAdES B-LT / B-LTA).
WORDS.update({
    "event.record_ltv_refreshed": "Đã gia hạn dấu thời gian lưu trữ của học bạ",
    "error.localpki_port": "Không mở được dịch vụ TSA/OCSP thử nghiệm trên cổng của nó.",
    "error.signer_cert": "Chứng thư số không dùng được để ký (đã bị thu hồi, hết hạn hoặc không được tin cậy).",
})


# The console's verify page: PAdES levels, timestamps, revocation, validity at a date (issue #18).
WORDS.update({
    "rec.ltv.level": "Mức PAdES", "rec.ltv.timestamp": "Dấu thời gian", "rec.ltv.revocation": "Đã kiểm tra thu hồi",
    "rec.ltv.none": "không có",
    "rec.ltv.at_label": "Còn kiểm chứng được vào ngày (không bắt buộc)",
    "rec.ltv.at_hint": ("dd/mm/yyyy, ví dụ 31/12/2040: khi chứng thư số của người ký đã hết hạn, chỉ dựa vào dữ "
                        "liệu kiểm tra có trong tệp."),
    "rec.ltv.at_col": "Ngày {day}",
    "rec.ltv.bad_date": "Ngày «{value}» không hợp lệ; hãy nhập theo dạng dd/mm/yyyy (ví dụ 31/12/2040).",
    "rec.ltv.at_ok": "Ngày {day}: mọi chữ ký vẫn kiểm chứng được từ dữ liệu trong tệp.",
    "rec.ltv.at_failed": ("Ngày {day}: {n} chữ ký không còn kiểm chứng được (cần mức PAdES B-LTA và gia hạn dấu "
                          "thời gian lưu trữ đúng hạn)."),
    "rec.ltv.archive": "Dấu thời gian lưu trữ", "rec.ltv.archive_count": "Số dấu thời gian lưu trữ",
    "rec.ltv.archive_last": "Gần nhất lúc", "rec.ltv.archive_expires": "Chứng thư của TSA hết hạn",
    "rec.ltv.renew": "Cần gia hạn trước ngày {day} (còn {days} ngày; máy chủ tự gia hạn: edudesk records refresh-ltv).",
    "rec.ltv.renew_due": "Đã đến lúc gia hạn dấu thời gian lưu trữ: chỉ còn {days} ngày, trước ngày {day}.",
    "rec.ltv.no_archive": "Tệp không có dấu thời gian lưu trữ: học bạ chưa đạt mức B-LTA.",
    "rec.ltv.legend": ("B-B: chữ ký cơ bản · B-T: có dấu thời gian · B-LT: tệp có sẵn dữ liệu kiểm tra thu hồi "
                       "(OCSP, CRL) · B-LTA: thêm dấu thời gian lưu trữ, kiểm chứng được lâu dài."),
})


# The "sign now" notice of minutes (biên bản thu hồi / điều chỉnh học bạ): core/signing/minutes_notice.py.
WORDS.update({
    "rec.minutes_notice.title.withdrawal": "<b>Mời Thầy/Cô ký biên bản thu hồi học bạ số</b>",
    "rec.minutes_notice.title.adjustment": "<b>Mời Thầy/Cô ký biên bản điều chỉnh học bạ số</b>",
    "rec.minutes_notice.title_many": "<b>Mời Thầy/Cô ký {n} biên bản thu hồi, điều chỉnh học bạ số</b>",
    "rec.minutes_notice.kinds.withdrawal": "thu hồi", "rec.minutes_notice.kinds.adjustment": "điều chỉnh",
    "rec.minutes_notice.one": ("Biên bản số <b>{number}</b>: {kind} học bạ số của học sinh <b>{student}</b> ({code}), "
                               "lớp <b>{klass}</b>, năm học {year}."),
    "rec.minutes_notice.item": "Số {number}: {kind} học bạ của {student} ({code}), lớp {klass} ({year}) — lý do: "
                               "{reason}",
    "rec.minutes_notice.more": "… và {n} biên bản khác",
    "rec.minutes_notice.reason": "Lý do: {reason}",
    "rec.minutes_notice.after.withdrawal": ("Khi biên bản được ký đủ, học bạ bị thu hồi: không còn giá trị sử dụng, "
                                            "chỉ được lưu giữ làm hồ sơ."),
    "rec.minutes_notice.after.adjustment": ("Khi biên bản được ký đủ, bản học bạ đã điều chỉnh được ký lại từ đầu "
                                            "theo đúng thứ tự; bản trước được lưu giữ làm hồ sơ."),
    "rec.minutes_notice.role": "Vai trò: Ban giám hiệu — biên bản nằm ở mục «{book}» trên trang Học bạ số.",
    "rec.minutes_notice.deadline": "Hạn ký: <b>{when}</b>",
    "rec.minutes_notice.link": "Xem biên bản: {link}",
    "rec.minutes_notice.open": "Xem biên bản", "rec.minutes_notice.list": "Xem danh sách",
})


# Withdrawals and adjustments told to the receiving portal (record notices); archived revisions renewed.
WORDS.update({
    "event.records_portal_notice": "Cổng tiếp nhận trả lời thông báo thu hồi hoặc điều chỉnh học bạ",
    "detail.notice": "Thông báo",
    "detail.replaces": "Thay cho biên nhận",
    "detail.revision": "Bản lập lần",
    "detail.student": "Mã học sinh",
    "detail.expired_at": "Dấu thời gian hết hạn lúc",
})

WORDS.update({  # issue 19: the export validates every record in full first
    "error.export_invalid": "Có học bạ không qua kiểm tra chữ ký đầy đủ nên chưa xuất được.",
})


# Reminders and escalations of record signing (core/signing/reminders.py); minutes are named as minutes.
WORDS.update({
    "rec.remind.soon": "<b>Nhắc ký học bạ số</b> — sắp đến hạn.",
    "rec.remind.leader": "<b>Ban giám hiệu nhắc ký học bạ số</b>",
    "rec.remind.body": "Lớp <b>{klass}</b> — {role}\nCòn <b>{n}</b> học bạ chờ Thầy/Cô ký; hạn {when}.",
    "rec.remind.late": "<b>Quá hạn ký học bạ</b>: {teacher} — lớp {klass}, {role}: còn {n} học bạ chưa ký.",
    "rec.remind.late_minutes": "<b>Quá hạn ký biên bản</b>: {teacher} — {klass}, {role}: còn {n} biên bản chưa ký.",
    "rec.remind.all": "Nhắc tất cả",
})


# The console's /reports page (bot/web/reports_view.py reads them as reports.label.*).
WORDS.update({
    "reports.label.title": "Báo cáo thống kê", "reports.label.nav": "Báo cáo", "reports.label.from": "Từ ngày",
    "reports.label.to": "Đến ngày", "reports.label.show": "Xem", "reports.label.this_month": "Tháng này",
    "reports.label.last_month": "Tháng trước", "reports.label.this_year": "Năm nay",
    "reports.label.all_units": "Tất cả đơn vị", "reports.label.back_all": "← Tất cả đơn vị",
    "reports.label.unit": "Đơn vị: {unit}", "reports.label.unit_col": "Đơn vị", "reports.label.make": "Lập báo cáo",
    "reports.label.make_xlsx": "Lập và tải Excel (.xlsx)", "reports.label.make_pdf": "Lập và tải PDF (.pdf)",
    "reports.label.make_hint": "Mỗi báo cáo lập ra được lưu trữ cùng kỳ báo cáo, người lập và thời điểm lập.",
    "reports.label.summary": "Tổng quan", "reports.label.overdue_now": "Quá hạn", "reports.label.charts": "Biểu đồ",
    "reports.label.units": "Theo đơn vị",
    "reports.label.units_hint": "Chọn một đơn vị để xem số liệu riêng của đơn vị đó.",
    "reports.label.archive": "Báo cáo đã lập", "reports.label.archive_none": "Chưa có báo cáo nào được lưu trữ.",
    "reports.label.archive_hint": "Báo cáo vừa lập có trong danh sách khi tải lại trang.",
    "reports.label.made_at": "Lập lúc", "reports.label.period": "Kỳ báo cáo", "reports.label.fmt": "Định dạng",
    "reports.label.made_by": "Người lập", "reports.label.size": "Dung lượng", "reports.label.download": "Tải về",
    "reports.label.scheduled": "{who} (tự động)",
    "reports.label.bad_date": "Ngày «{value}» không hợp lệ; hãy chọn lại ngày (dd/mm/yyyy).",
    "reports.label.bad_order": "Ngày bắt đầu {start} sau ngày kết thúc {end}; hãy chọn lại kỳ báo cáo.",
    "reports.label.too_long": "Kỳ báo cáo dài tối đa {days} ngày; hãy chọn kỳ ngắn hơn.",
    "reports.label.bad_format": "Báo cáo chỉ lập được dưới dạng .xlsx hoặc .pdf.",
    "reports.label.no_requests": "Không có yêu cầu nào trong kỳ báo cáo này.", "reports.label.none": "Không có.",
})


# The "sign now" notice of a class's records (core/signing/turns.py sign_notice).
WORDS.update({
    "rec.notice.body": "<b>Mời Thầy/Cô ký học bạ số</b>\nLớp <b>{klass}</b> — năm học {year}\nVai trò: {role}\n"
                       "Số học bạ chờ Thầy/Cô ký: <b>{n}</b>\nHạn ký: <b>{when}</b>",
    "rec.notice.no_credential": "Thầy/Cô chưa có chứng thư số được duyệt: hãy đăng ký chứng thư số trên trang quản "
                                "trị (mục Học bạ số → Chứng thư số) để ký được.",
    "rec.notice.pin": "Thầy/Cô ký trên trang quản trị (Học bạ số → Ký ngay) với mã PIN ký của mình.",
    "rec.notice.where": "Thầy/Cô xem học bạ và ký trên trang quản trị của nhà trường (Học bạ số → Ký ngay), hoặc "
                        "bằng nút «Ký ngay» trong tin nhắn của bot.",
    "rec.notice.preflight": "Kiểm tra chứng thư số:",
})
