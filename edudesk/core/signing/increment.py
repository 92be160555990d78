"""The check after each signature at a constant cost: only the revisions the signer appended are read.

The file before the signature was proven when it was stored (its SHA-256 and length are kept on the record,
`SchoolRecord.pdf_sha256`/`pdf_length`, and compared before the next signature): the signed file must begin
with exactly those bytes, and what follows them may only do what a signature into the step's own field does:
fill that field (`/V`, `/AP`), add new objects (the signature dictionary, its appearance, validation data),
set `/SigFlags`, certify (`/Perms`, first signature only), add or extend the DSS, touch the document
information's dates. Any other object of the proven file overridden, an object freed, a signed field touched
again, a field signed out of stage order: the signature is refused before the next signer sees the file.
pyHanko's own difference analysis walks every path of the whole document for each revision (hundreds of
milliseconds at 15 signatures, growing with each); here the cost does not grow with the record. The full
validation (`verify.verify_record`) still runs once at issue and at export.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

INFO_KEYS = frozenset({"/ModDate", "/Producer"})
ROOT_KEYS = frozenset({"/Perms", "/Extensions", "/DSS"})
FORM_KEYS = frozenset({"/SigFlags"})
FIELD_KEYS = frozenset({"/V", "/AP"})
DSS_KEYS = frozenset({"/Certs", "/OCSPs", "/CRLs", "/VRI"})


class Unexplained(Exception):
    """A change in the new revisions that filling the step's field does not explain (Vietnamese text)."""


@dataclass(frozen=True)
class Increment:
    """What the new revisions are: the signed field, the revision it was signed in, and the record before."""

    field: Any  # the field dictionary, as the newest revision has it
    base_revision: int  # the last revision of the proven file
    signed_before: tuple[str, ...]  # the fields already signed in the proven file


@dataclass(frozen=True)
class CheckItem:
    """A signed PDF for the pool to check: the proven file it must begin with as (length, SHA-256), the field
    signed, and for the full validation (at issue) every field the record must carry."""

    signed: bytes = field(repr=False)
    proven: tuple[int, str]
    sig_field: str
    full: tuple[str, ...] | None = None


def proof(pdf: bytes) -> tuple[int, str]:
    """(length, SHA-256 hex) of a file as stored after its check."""
    return len(pdf), hashlib.sha256(pdf).hexdigest()


def _changed(old: Any, new: Any) -> set[str]:
    from pyhanko.pdf_utils import generic

    if not isinstance(old, generic.DictionaryObject) or not isinstance(new, generic.DictionaryObject):
        raise Unexplained("một đối tượng có sẵn bị thay bằng đối tượng khác loại")
    if isinstance(old, generic.StreamObject) and old.encoded_data != getattr(new, "encoded_data", None):
        raise Unexplained("nội dung một luồng (stream) có sẵn bị thay đổi")
    return {str(k) for k in set(old) | set(new) if _raw(old, k) != _raw(new, k)}


def _raw(obj: Any, key: Any) -> Any:
    return obj.raw_get(key) if key in obj else None


def _ref(value: Any) -> Any:
    from pyhanko.pdf_utils import generic

    return value.reference if isinstance(value, generic.IndirectObject) else None


def review(reader: Any, proven_length: int, field: str) -> Increment:
    """Check every revision after the first `proven_length` bytes; raises Unexplained on anything else."""
    xrefs = reader.xrefs
    total = xrefs.total_revisions
    base = max((r for r in range(total) if xrefs.get_xref_container_info(r).end_location <= proven_length),
               default=None)
    if base is None or base == total - 1:
        raise Unexplained("không có phiên bản mới nào sau phần đã kiểm tra")
    old = reader.get_historical_resolver(base)
    size = xrefs.get_xref_container_info(base).size
    trailer = old.trailer_view
    root_ref, info_ref = _ref(trailer.raw_get("/Root")), _ref(_raw(trailer, "/Info"))
    root = old(root_ref)
    form_ref = _ref(_raw(root, "/AcroForm"))
    dss_ref = _ref(_raw(root, "/DSS"))
    target, signed = None, []
    for value in (old(form_ref) if form_ref else root.get("/AcroForm", {})).get("/Fields", ()):
        ref = _ref(value)
        obj = old(ref) if ref else value
        if obj.get("/FT") == "/Sig" and "/V" in obj:
            signed.append(str(obj.get("/T")))
        if str(obj.get("/T")) == field:
            target = ref
    if target is None:
        raise Unexplained(f"không có trường chữ ký {field} trong tệp")
    if field in signed:
        raise Unexplained(f"trường {field} đã có chữ ký từ trước")
    for rev in range(base + 1, total):
        if xrefs.refs_freed_in_revision(rev):
            raise Unexplained("một phiên bản mới xoá (giải phóng) đối tượng có sẵn")
        new, prior = reader.get_historical_resolver(rev), reader.get_historical_resolver(rev - 1)
        if _ref(new.trailer_view.raw_get("/Root")) != root_ref:
            raise Unexplained("gốc tài liệu (/Root) bị thay")
        for ref in xrefs.explicit_refs_in_revision(rev):
            if ref.idnum >= size and xrefs.get_introducing_revision(ref) == rev:
                continue  # a new object: reachable only through the keys allowed below
            allowed = _allowed(ref, root_ref=root_ref, info_ref=info_ref, form_ref=form_ref, target=target,
                               dss_ref=dss_ref or _ref(_raw(new(root_ref), "/DSS")))
            if allowed is None:
                raise Unexplained(f"đối tượng {ref.idnum} của tệp đã kiểm tra bị ghi đè")
            extra = _changed(prior(ref), new(ref)) - allowed
            if ref == root_ref and "/Perms" in _changed(prior(ref), new(ref)) and (signed or "/Perms" in root):
                extra.add("/Perms")  # only the first signature certifies
            if extra:
                raise Unexplained(f"đối tượng {ref.idnum} bị sửa ngoài phần được phép ({', '.join(sorted(extra))})")
    return Increment(reader.get_object(target), base, tuple(signed))


def _allowed(ref: Any, *, root_ref: Any, info_ref: Any, form_ref: Any, target: Any,
             dss_ref: Any) -> frozenset[str] | None:
    """The keys an existing object may change in a new revision (None: it may not be overridden at all)."""
    return {root_ref: ROOT_KEYS, info_ref: INFO_KEYS, form_ref: FORM_KEYS, target: FIELD_KEYS,
            dss_ref: DSS_KEYS}.get(ref) if ref is not None else None
