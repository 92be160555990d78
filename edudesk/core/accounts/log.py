"""The account log (the procedures' CreateEmail log): record each directory change, export it as CSV or .xlsx."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from edudesk.core.accounts.models import AccountLog

COLUMNS = (
    ("at", "Thời gian", "Time"),
    ("action", "Thao tác", "Action"),
    ("address", "Địa chỉ", "Address"),
    ("full_name", "Họ và tên", "Full name"),
    ("person_id", "Mã cán bộ/sinh viên", "Staff/student ID"),
    ("backend", "Hệ thống", "Directory"),
    ("request_id", "Yêu cầu", "Request"),
    ("approved_by", "Người duyệt", "Approved by"),
    ("executed_by", "Người thực hiện", "Executed by"),
    ("ok", "Kết quả", "Outcome"),
    ("answer", "Phản hồi của hệ thống", "Directory's answer"),
)
ACTION_LABELS = {
    "vi": {"create": "Tạo", "link": "Nhận lại", "reset": "Đặt lại mật khẩu", "suspend": "Tạm khoá",
           "delete": "Xoá", "taken": "Địa chỉ đã có người dùng", "restore": "Giữ lại (mở khoá)"},
    "en": {"create": "Create", "link": "Link existing", "reset": "Password reset", "suspend": "Suspend",
           "delete": "Delete", "taken": "Address taken", "restore": "Kept (unlocked)"},
}


async def record_change(conn: Any, at: datetime, *, action: str, address: str, backend: str,
                        request_id: int | None, approved_by: str = "", executed_by: str = "", ok: bool = True,
                        answer: str = "", full_name: str = "", person_id: str = "") -> None:
    """Append one entry (in the caller's transaction). `answer` must never carry a password."""
    await AccountLog.create(at=at, action=action, address=address, backend=backend, request_id=request_id,
                            approved_by=approved_by[:200], executed_by=executed_by[:200], ok=ok,
                            answer=answer[:500], full_name=full_name[:300], person_id=person_id[:64],
                            using_db=conn)


async def log_rows(since: datetime | None = None, until: datetime | None = None,
                   request_id: int | None = None) -> list[AccountLog]:
    """Log entries in time order, optionally of one period or one request."""
    query = AccountLog.all()
    if since is not None:
        query = query.filter(at__gte=since)
    if until is not None:
        query = query.filter(at__lt=until)
    if request_id is not None:
        query = query.filter(request_id=request_id)
    return await query.order_by("at", "id")


def _cells(row: AccountLog, lang: str, tz: Any) -> list[Any]:
    labels = ACTION_LABELS.get(lang, ACTION_LABELS["vi"])
    ok = ("thành công" if row.ok else "lỗi") if lang == "vi" else ("ok" if row.ok else "failed")
    at = row.at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if tz is not None else row.at.isoformat()
    return [at, labels.get(row.action, row.action), row.address, row.full_name, row.person_id, row.backend,
            f"YC-{row.request_id}" if row.request_id else "", row.approved_by, row.executed_by, ok, row.answer]


def _header(lang: str) -> list[str]:
    return [vi if lang == "vi" else en for _, vi, en in COLUMNS]


def export_csv(rows: list[AccountLog], lang: str = "vi", tz: Any = None) -> bytes:
    """CSV in UTF-8 with a BOM (Excel on Windows then shows Vietnamese correctly)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(_header(lang))
    for row in rows:
        writer.writerow(_cells(row, lang, tz))
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def export_xlsx(rows: list[AccountLog], lang: str = "vi", tz: Any = None) -> bytes:
    """One sheet, bold header, frozen first row, columns wide enough to read."""
    from openpyxl import Workbook  # imported when an export is asked for, not at start
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = "Nhật ký tài khoản" if lang == "vi" else "Account log"
    sheet.append(_header(lang))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append(_cells(row, lang, tz))
    sheet.freeze_panes = "A2"
    for i, width in enumerate((20, 18, 34, 26, 16, 12, 10, 22, 22, 10, 40), start=1):
        sheet.column_dimensions[sheet.cell(row=1, column=i).column_letter].width = width
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
