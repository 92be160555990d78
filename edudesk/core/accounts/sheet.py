"""The .xlsx of accounts a unit receives for a list: one sheet, optionally encrypted with a password."""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from msoffcrypto.format.ooxml import OOXMLFile

# (key in the row, Vietnamese header, English header, minimum width, maximum width)
COLUMNS: tuple[tuple[str, str, str, int, int], ...] = (
    ("full_name", "Họ và tên", "Full name", 18, 40),
    ("person_id", "Mã cán bộ/sinh viên", "Staff/student ID", 12, 24),
    ("address", "Địa chỉ thư điện tử", "E-mail address", 24, 50),
    ("password", "Mật khẩu", "Password", 14, 30),
    ("result", "Kết quả", "Result", 12, 30),
    ("detail", "Ghi chú", "Detail", 16, 60),
)
NUMBER_HEADER = {"vi": "STT", "en": "No."}
SHEET_TITLE = {"vi": "Tài khoản", "en": "Accounts"}
RESULT_LABELS: Mapping[str, Mapping[str, str]] = {
    "vi": {"created": "Đã tạo", "linked": "Đã nhận lại tài khoản có sẵn", "reset": "Đã đặt lại mật khẩu",
           "suspended": "Đã tạm khoá", "deleted": "Đã xoá", "absent": "Không có tài khoản",
           "failed": "Không thành công"},
    "en": {"created": "Created", "linked": "Existing account linked", "reset": "Password reset",
           "suspended": "Suspended", "deleted": "Deleted", "absent": "No such account", "failed": "Failed"},
}


def _text(value: Any) -> str:
    # NFC: names typed on macOS or pasted from PDFs arrive decomposed and would not match the directory.
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE  # openpyxl is imported when a sheet is made, not at start

    text = unicodedata.normalize("NFC", "" if value is None else str(value))
    return ILLEGAL_CHARACTERS_RE.sub("", text)


def _value(key: str, row: Mapping[str, Any], lang: str) -> str:
    text = _text(row.get(key))
    if key == "result":
        return RESULT_LABELS[lang].get(text, text)
    return text


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str, int, int]]:
    # Name and address always; the rest only when some row carries it (no empty password column).
    return [c for c in COLUMNS if c[0] in ("full_name", "address") or any(_text(r.get(c[0])) for r in rows)]


def _workbook(rows: Sequence[Mapping[str, Any]], lang: str) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    columns = _columns(rows)
    # A monospaced face keeps l/1/I and O/0 apart when someone types the password from the sheet.
    password_font = Font(name="Consolas")
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = SHEET_TITLE[lang]
    sheet.append([NUMBER_HEADER[lang], *(vi if lang == "vi" else en for _, vi, en, _, _ in columns)])
    bold = Font(bold=True)
    for cell in sheet[1]:
        cell.font = bold
        cell.alignment = Alignment(vertical="center")
    widths = [len(NUMBER_HEADER[lang]) + 2, *(len(vi if lang == "vi" else en) + 2 for _, vi, en, _, _ in columns)]
    for number, row in enumerate(rows, start=1):
        sheet.cell(row=number + 1, column=1, value=number)
        for i, (key, *_ignored) in enumerate(columns, start=2):
            value = _value(key, row, lang)
            cell = sheet.cell(row=number + 1, column=i, value=value)
            # Always text: a name or password starting with "=" must not become a formula, and a
            # person id like 0012 must keep its zeros.
            cell.data_type = "s"
            cell.number_format = "@"
            if key == "password":
                cell.font = password_font
            widths[i - 1] = max(widths[i - 1], len(value) + 2)
    sheet.freeze_panes = "A2"
    sheet.column_dimensions["A"].width = max(5, widths[0])
    for i, (_, _, _, low, high) in enumerate(columns, start=2):
        sheet.column_dimensions[sheet.cell(row=1, column=i).column_letter].width = min(high, max(low, widths[i - 1]))
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _encrypt(data: bytes, password: str) -> bytes:
    # OOXML agile encryption (AES-256, SHA-512): Excel and LibreOffice ask for the password on opening.
    out = io.BytesIO()
    OOXMLFile(io.BytesIO(data)).encrypt(password, out)
    return out.getvalue()


def build_accounts_xlsx(rows: Sequence[Mapping[str, Any]], *, lang: str = "vi", password: str | None = None) -> bytes:
    """The accounts as one .xlsx sheet (Vietnamese or English headers), encrypted when `password` is given.

    CPU-bound (encryption derives its key with 100,000 SHA-512 rounds): async callers run it in a thread.
    """
    lang = lang if lang in SHEET_TITLE else "vi"
    data = _workbook(rows, lang)
    return _encrypt(data, password) if password else data
