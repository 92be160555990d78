"""Decide what an attachment is and whether it is safe to open, before any parser touches it."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

from edudesk.core.config import IntakeSettings
from edudesk.core.forms import messages
from edudesk.core.intake.domain import Attachment, Problem

MAX_ZIP_ENTRIES = 1000  # a form has ~15 parts; thousands of entries is a parser-exhaustion trick
RATIO_MIN_BYTES = 1_048_576  # small XML parts compress 20:1 legitimately; ratios matter for big ones

_BY_EXTENSION = {
    "docx": "docx", "docm": "docx", "dotx": "docx", "xlsx": "xlsx", "xlsm": "xlsx", "xltx": "xlsx",
    "csv": "csv", "pdf": "pdf", "doc": "old", "xls": "old",
}
_BY_TYPE = {
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/csv": "csv",
    "application/pdf": "pdf",
    "application/msword": "old",
    "application/vnd.ms-excel": "old",
}
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


@dataclass
class Checked:
    """What an attachment turned out to be: a type to read (with its zip, if any) or a finding."""

    kind: str | None = None  # docx | xlsx | csv | pdf; None: not a form, or refused
    zipfile: zipfile.ZipFile | None = None
    problem: Problem | None = None


def claimed_kind(att: Attachment) -> str | None:
    """The type the file name (or, failing that, the content type) claims."""
    name = att.filename.lower().rsplit(".", 1)
    if len(name) == 2 and name[1] in _BY_EXTENSION:
        return _BY_EXTENSION[name[1]]
    return _BY_TYPE.get(att.content_type.split(";")[0].strip().lower())


def zip_is_hostile(zf: zipfile.ZipFile, settings: IntakeSettings) -> bool:
    """True when the central directory promises too much: size, ratio or entry count."""
    infos = zf.infolist()
    if len(infos) > MAX_ZIP_ENTRIES:
        return True
    total = sum(i.file_size for i in infos)
    packed = sum(i.compress_size for i in infos)
    if total > settings.max_uncompressed_bytes:
        return True
    if total >= RATIO_MIN_BYTES and total > settings.max_compression_ratio * max(packed, 1):
        return True
    # zipfile stops each member at its declared size, so the directory is a real bound.
    ratio = settings.max_compression_ratio
    big = (i for i in infos if i.file_size >= RATIO_MIN_BYTES)
    return any(i.file_size > ratio * max(i.compress_size, 1) for i in big)


def check_attachment(att: Attachment, settings: IntakeSettings) -> Checked:
    """Sniff the real type, refuse oversized or hostile files, open zips for the readers."""
    claimed = claimed_kind(att)
    if claimed is None:
        return Checked()  # pictures, archives, signatures: not forms
    payload = att.payload
    if len(payload) > settings.max_attachment_bytes:
        limit = settings.max_attachment_bytes
        return Checked(problem=messages.attachment_too_large(att.filename, len(payload), limit))
    if payload.startswith(_OLE_MAGIC) or (claimed == "old" and not payload.startswith(b"PK")):
        return Checked(problem=messages.unsupported_attachment(att.filename))
    if b"%PDF-" in payload[:1024]:
        return Checked("pdf")
    if payload.startswith(b"PK\x03\x04"):
        try:
            zf = zipfile.ZipFile(io.BytesIO(payload))
        except Exception:  # BadZipFile, NotImplementedError for bogus versions, OSError, ...
            return Checked(problem=messages.unreadable_attachment(att.filename))
        if zip_is_hostile(zf, settings):
            return Checked(problem=messages.hostile_attachment(att.filename))
        names = set(zf.namelist())
        if "word/document.xml" in names:
            return Checked("docx", zf)
        if "xl/workbook.xml" in names:
            return Checked("xlsx", zf)
        return Checked(problem=messages.unreadable_attachment(att.filename))
    if claimed == "csv":
        return Checked("csv")
    return Checked(problem=messages.unreadable_attachment(att.filename))
