"""The findings form extraction reports: stable codes, Vietnamese text addressed to the requester."""

from __future__ import annotations

from core.intake.domain import Problem, Severity

ERROR, WARNING, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO


def _name(filename: str) -> str:
    return filename or "(không có tên)"


def no_form() -> Problem:
    """No person could be read from the mail or its attachments."""
    return Problem(
        "form",
        "no_form",
        "Không tìm thấy thông tin đăng ký trong thư (họ và tên, mã số sinh viên hoặc mã cán bộ). "
        "Vui lòng điền phiếu đăng ký theo mẫu và gửi lại.",
    )


def attachment_too_large(filename: str, size: int, limit: int) -> Problem:
    """An attachment over the size limit, left unread."""
    mb, max_mb = size / 1_048_576, limit / 1_048_576
    return Problem(
        "attachment",
        "attachment_too_large",
        f"Tệp đính kèm “{_name(filename)}” quá lớn ({mb:.1f} MB, tối đa {max_mb:.0f} MB); "
        "vui lòng gửi tệp nhỏ hơn.",
    )


def hostile_attachment(filename: str) -> Problem:
    """A zip (docx/xlsx) whose directory promises a decompression bomb; never opened."""
    return Problem(
        "attachment",
        "hostile_attachment",
        f"Tệp đính kèm “{_name(filename)}” bị từ chối vì không an toàn (dung lượng giải nén quá lớn "
        "hoặc quá nhiều thành phần). Vui lòng gửi lại phiếu dạng .docx hoặc .xlsx thông thường.",
    )


def unreadable_attachment(filename: str) -> Problem:
    """A file that claims to be a form but cannot be parsed."""
    return Problem(
        "attachment",
        "unreadable_attachment",
        f"Không đọc được tệp đính kèm “{_name(filename)}” (tệp bị hỏng hoặc không đúng định dạng "
        ".docx, .xlsx, .csv, .pdf). Vui lòng kiểm tra và gửi lại.",
    )


def unsupported_attachment(filename: str) -> Problem:
    """An old binary Office file (.doc/.xls) that edudesk does not read."""
    return Problem(
        "attachment",
        "unsupported_attachment",
        f"Tệp “{_name(filename)}” ở định dạng Word/Excel cũ (.doc/.xls) chưa đọc được tự động; "
        "vui lòng lưu lại dưới dạng .docx hoặc .xlsx và gửi lại.",
        WARNING,
    )


def too_many_rows(limit: int) -> Problem:
    """A list longer than the configured maximum; only the first rows were read."""
    return Problem(
        "form",
        "too_many_rows",
        f"Danh sách có hơn {limit} dòng; chỉ {limit} dòng đầu được xử lý. "
        "Vui lòng chia danh sách thành nhiều thư.",
    )


def legacy_encoding() -> Problem:
    """Names were typed in TCVN3/VNI fonts and were converted; the office should glance at them."""
    return Problem(
        "form",
        "legacy_encoding",
        "Phiếu được gõ bằng bảng mã cũ (TCVN3/VNI); họ tên đã được chuyển sang Unicode, "
        "vui lòng kiểm tra lại.",
        INFO,
    )


def missing_name(row: int, severity: Severity = ERROR) -> Problem:
    """A person with an ID but no name."""
    return Problem("full_name", "missing_name", "Thiếu họ và tên.", severity, row)


def missing_id(row: int, staff: bool) -> Problem:
    """A person without the student or staff ID the registry check needs."""
    what = "mã cán bộ" if staff else "mã số sinh viên"
    field = "staff_id" if staff else "student_id"
    return Problem(field, "missing_id", f"Thiếu {what}.", WARNING, row)


def invalid_id(row: int, raw: str) -> Problem:
    """An ID cell that holds words rather than an ID ("chưa có")."""
    return Problem(
        "person_id",
        "invalid_id",
        f"Mã số “{raw}” không hợp lệ (mã số gồm chữ và số, ví dụ 20201234).",
        WARNING,
        row,
    )


def invalid_date(row: int, raw: str) -> Problem:
    """A date of birth that is not a real day."""
    return Problem(
        "date_of_birth",
        "invalid_date",
        f"Ngày sinh “{raw}” không hợp lệ; vui lòng ghi theo dạng ngày/tháng/năm, ví dụ 05/03/2003.",
        ERROR,
        row,
    )


def missing_mobile(row: int) -> Problem:
    """An individual's form without the mandatory mobile number."""
    return Problem(
        "mobile", "missing_mobile", "Thiếu số điện thoại di động (bắt buộc trên phiếu đăng ký).", ERROR, row
    )


def invalid_mobile(row: int, raw: str, severity: Severity = ERROR) -> Problem:
    """A phone number that is not a valid mobile number."""
    return Problem(
        "mobile",
        "invalid_mobile",
        f"Số điện thoại “{raw}” không phải số di động hợp lệ; vui lòng ghi số di động, "
        "ví dụ 0912 345 678.",
        severity,
        row,
    )


def invalid_email(row: int, raw: str) -> Problem:
    """A personal e-mail address that cannot be an address."""
    return Problem(
        "personal_email",
        "invalid_email",
        f"Địa chỉ email cá nhân “{raw}” không hợp lệ.",
        WARNING,
        row,
    )


def duplicate_row(row: int, person_id: str, first_row: int) -> Problem:
    """The same ID twice in one list."""
    return Problem(
        "person_id",
        "duplicate_row",
        f"Mã số {person_id} xuất hiện nhiều lần trong danh sách (người thứ {first_row + 1} "
        f"và người thứ {row + 1}).",
        WARNING,
        row,
    )
