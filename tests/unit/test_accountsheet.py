"""The .xlsx a unit receives for its list: what it shows, and that a password really protects it."""

from __future__ import annotations

import io
import time
import unicodedata
import zipfile
from typing import Any

import msoffcrypto
import olefile
import openpyxl
import pytest
from msoffcrypto.exceptions import InvalidKeyError
from openpyxl.worksheet.worksheet import Worksheet

from edudesk.core.accounts.sheet import build_accounts_xlsx

ROWS = [
    {"full_name": "Nguyễn Thị Hoà", "address": "hoa.nt2025@sis.hust.edu.vn", "password": "Hx7-pq2m-Lzw",
     "person_id": "20250001", "result": "created"},
    {"full_name": "Trần Văn Đức", "address": "duc.tv2025@sis.hust.edu.vn", "password": "Kt9#bd4R-qmx",
     "person_id": "20250002", "result": "linked"},
    {"full_name": "Lê Thị Ngọc Ánh", "address": "anh.ltn2025@sis.hust.edu.vn", "password": "",
     "person_id": "20250003", "result": "failed", "detail": "Máy chủ từ chối: mật khẩu không đạt chính sách"},
]
LIST_PASSWORD = "Khoa CNTT – 2026"


def sheet_of(data: bytes) -> Worksheet:
    book = openpyxl.load_workbook(io.BytesIO(data))
    sheet = book.active
    assert isinstance(sheet, Worksheet)
    return sheet


def values(sheet: Worksheet) -> list[list[Any]]:
    return [[cell.value for cell in row] for row in sheet.iter_rows()]


def decrypt(data: bytes, password: str) -> bytes:
    office = msoffcrypto.OfficeFile(io.BytesIO(data))
    office.load_key(password=password)
    out = io.BytesIO()
    office.decrypt(out)
    return out.getvalue()


def test_sheet_shows_vietnamese_headers_and_every_row() -> None:
    sheet = sheet_of(build_accounts_xlsx(ROWS))
    assert sheet.title == "Tài khoản"
    assert values(sheet) == [
        ["STT", "Họ và tên", "Mã cán bộ/sinh viên", "Địa chỉ thư điện tử", "Mật khẩu", "Kết quả", "Ghi chú"],
        [1, "Nguyễn Thị Hoà", "20250001", "hoa.nt2025@sis.hust.edu.vn", "Hx7-pq2m-Lzw", "Đã tạo", None],
        [2, "Trần Văn Đức", "20250002", "duc.tv2025@sis.hust.edu.vn", "Kt9#bd4R-qmx",
         "Đã nhận lại tài khoản có sẵn", None],
        [3, "Lê Thị Ngọc Ánh", "20250003", "anh.ltn2025@sis.hust.edu.vn", None, "Không thành công",
         "Máy chủ từ chối: mật khẩu không đạt chính sách"],
    ]


def test_sheet_headers_are_english_when_asked() -> None:
    sheet = sheet_of(build_accounts_xlsx(ROWS, lang="en"))
    assert sheet.title == "Accounts"
    assert values(sheet)[0] == ["No.", "Full name", "Staff/student ID", "E-mail address", "Password", "Result",
                                "Detail"]
    assert [row[5] for row in values(sheet)[1:]] == ["Created", "Existing account linked", "Failed"]


def test_decomposed_names_come_out_composed() -> None:
    typed_on_a_mac = unicodedata.normalize("NFD", "Phạm Thị Hương")
    assert typed_on_a_mac != "Phạm Thị Hương"
    sheet = sheet_of(build_accounts_xlsx([{"full_name": typed_on_a_mac, "address": "huong.pt@sis.hust.edu.vn"}]))
    name = sheet["B2"].value
    assert name == "Phạm Thị Hương" and unicodedata.is_normalized("NFC", name)


def test_only_the_columns_the_rows_carry_are_shown() -> None:
    rows = [{"full_name": "Nguyễn Văn An", "address": "an.nv@sis.hust.edu.vn", "password": "",
             "person_id": "", "password_link": "https://edudesk.hust.edu.vn/p/Zk3q9w"}]
    sheet = sheet_of(build_accounts_xlsx(rows))
    assert values(sheet) == [["STT", "Họ và tên", "Địa chỉ thư điện tử"], [1, "Nguyễn Văn An", "an.nv@sis.hust.edu.vn"]]


def test_header_is_bold_and_frozen_and_columns_are_wide_enough() -> None:
    sheet = sheet_of(build_accounts_xlsx(ROWS))
    assert all(cell.font.bold for cell in sheet[1])
    assert not sheet["B2"].font.bold
    assert sheet.freeze_panes == "A2"
    widths = {letter: sheet.column_dimensions[letter].width for letter in "ABCDEFG"}
    assert widths["D"] >= len("anh.ltn2025@sis.hust.edu.vn") and widths["B"] >= len("Lê Thị Ngọc Ánh")
    assert max(widths.values()) <= 60


def test_cells_are_text_a_formula_lookalike_stays_a_string_and_ids_keep_their_zeros() -> None:
    rows = [{"full_name": '=HYPERLINK("http://evil.example","Bấm vào đây")', "address": "x@sis.hust.edu.vn",
             "password": "=Ab3+cd", "person_id": "0012345"}]
    data = build_accounts_xlsx(rows)
    xml = zipfile.ZipFile(io.BytesIO(data)).read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in xml  # no formula anywhere: Excel would run it on opening
    sheet = sheet_of(data)
    assert sheet["B2"].data_type == "s" and sheet["B2"].value == rows[0]["full_name"]
    assert sheet["C2"].value == "0012345"
    assert sheet["E2"].value == "=Ab3+cd"


def test_an_empty_list_gives_the_header_alone() -> None:
    assert values(sheet_of(build_accounts_xlsx([]))) == [["STT", "Họ và tên", "Địa chỉ thư điện tử"]]


def test_with_a_password_the_file_is_encrypted_and_openpyxl_cannot_read_it() -> None:
    data = build_accounts_xlsx(ROWS, password=LIST_PASSWORD)
    assert olefile.isOleFile(data)  # the OLE container Excel and LibreOffice ask a password for
    assert not zipfile.is_zipfile(io.BytesIO(data))
    assert msoffcrypto.OfficeFile(io.BytesIO(data)).is_encrypted()
    with pytest.raises(zipfile.BadZipFile):
        openpyxl.load_workbook(io.BytesIO(data))
    for row in ROWS:
        for text in (row["password"], row["address"]):
            if text:
                assert text.encode() not in data and text.encode("utf-16-le") not in data


def test_the_right_password_opens_the_sheet_and_a_wrong_one_is_refused() -> None:
    data = build_accounts_xlsx(ROWS, password=LIST_PASSWORD)
    sheet = sheet_of(decrypt(data, LIST_PASSWORD))
    assert values(sheet) == values(sheet_of(build_accounts_xlsx(ROWS)))
    with pytest.raises(InvalidKeyError):
        decrypt(data, "Khoa CNTT - 2026")  # a hyphen for the en dash


def test_encrypting_a_list_of_a_thousand_takes_under_two_seconds() -> None:
    rows = [{"full_name": f"Phạm Thị Hương {i}", "address": f"huong.pt{i:04d}@sis.hust.edu.vn",
             "password": "Hx7-pq2m-Lzw", "person_id": f"2025{i:04d}", "result": "created"} for i in range(1000)]
    started = time.perf_counter()
    data = build_accounts_xlsx(rows, password=LIST_PASSWORD)
    elapsed = time.perf_counter() - started
    print(f"1,000 rows encrypted in {elapsed:.2f} s, {len(data) / 1024:.0f} KiB")
    assert elapsed < 2.0
    assert sheet_of(decrypt(data, LIST_PASSWORD)).max_row == 1001
