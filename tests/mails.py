"""Realistic raw mails for the intake tests (built with the stdlib, as a mail client would send them)."""

from __future__ import annotations

import io
import zipfile
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

from docx import Document

FORMS = Path(__file__).resolve().parent.parent / "edudesk" / "templates" / "forms"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def filled_bm02(values: dict[str, str]) -> bytes:
    """The shipped BM02 student form with some cells filled, as a student would."""
    doc = Document(str(FORMS / "BM02.docx"))
    for table in doc.tables:
        for row in table.rows:
            label = row.cells[0].text.strip()
            for key, value in values.items():
                if label.startswith(key):
                    row.cells[-1].text = value
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def zip_bomb_docx() -> bytes:
    """A .docx-named zip that expands to 1 GiB of zeros (about 1 MB on the wire)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        with zf.open("word/document.xml", "w", force_zip64=True) as f:
            block = b"\0" * (1 << 20)
            for _ in range(1024):
                f.write(block)
    return out.getvalue()


def mail(
    *,
    sender: str = "Nguyễn Văn An <an.nv2003@gmail.com>",
    to: str = "office-bknic@hust.edu.vn",
    subject: str = "Đăng ký cấp tài khoản email sinh viên",
    body: str = "",
    attachments: list[tuple[str, str, bytes]] | None = None,
    message_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    """A raw mail (bytes as on the wire)."""
    m = EmailMessage()
    m["From"] = sender
    m["To"] = to
    m["Subject"] = subject
    m["Message-ID"] = message_id or make_msgid(domain="gmail.com")
    for name, value in (headers or {}).items():
        m[name] = value
    m.set_content(body or "Kính gửi Trung tâm,\nEm gửi phiếu đăng ký.\n")
    for filename, ctype, payload in attachments or []:
        main, _, sub = ctype.partition("/")
        m.add_attachment(payload, maintype=main, subtype=sub, filename=filename)
    return m.as_bytes(policy=m.policy.clone(linesep="\r\n"))  # CRLF, as on the wire


STUDENT_BODY = (
    "Kính gửi Trung tâm Mạng Thông tin,\n"
    "Em xin đăng ký cấp tài khoản thư điện tử sinh viên.\n"
    "Họ và tên: {name}\n"
    "Mã số sinh viên: {sid}\n"
    "Ngày sinh: {dob}\n"
    "Lớp: {klass}\n"
    "Số điện thoại: {phone}\n"
)


def student_form_mail(name: str = "Nguyễn Văn An", sid: str = "20201234", dob: str = "05/03/2003",
                      klass: str = "CNTT-01 K65", phone: str = "0912 345 678", **kwargs: object) -> bytes:
    """A new-account request written in the mail body."""
    body = STUDENT_BODY.format(name=name, sid=sid, dob=dob, klass=klass, phone=phone)
    return mail(body=body, **kwargs)  # type: ignore[arg-type]


def registry_xlsx(path: Path, rows: list[tuple[str, str, str, str, str]]) -> Path:
    """A student registry export: MSSV, name, date of birth, class, email."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(["DANH SÁCH SINH VIÊN"])
    ws.append(["STT", "Mã số SV", "Họ và tên", "Ngày sinh", "Lớp", "Email"])
    for i, row in enumerate(rows, 1):
        ws.append([i, *row])
    wb.save(path)
    return path
