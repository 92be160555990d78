"""The end of a class's signing: told to the admins when the last record is signed, then the export
package (every signed PDF and a manifest with its hash and signatures) once the admin has confirmed."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from html import escape as esc
from pathlib import Path
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from edudesk.core.chats.notify import enqueue_notice
from edudesk.core.config import Settings
from edudesk.core.errors import EdudeskError
from edudesk.core.jobs import JobQueue
from edudesk.core.people.staff import Role, staff_holding
from edudesk.core.ports import OnProgress
from edudesk.core.signing.models import SchoolClass, SchoolRecord, SignatureStep
from edudesk.core.text import strip_diacritics


async def record_completed(conn: BaseDBAsyncClient, queue: JobQueue, settings: Settings, class_id: int) -> None:
    """After a record's last signature: when the whole class is signed, ask the admins to confirm."""
    from edudesk.core.signing.changes import minutes_signed

    if await minutes_signed(conn, queue, settings, class_id):  # minutes of a withdrawal or an adjustment
        return
    if await SchoolRecord.filter(klass_id=class_id).exclude(state__in=("signed", "withdrawn")).using_db(
            conn).exists():
        return
    if not await SchoolClass.filter(id=class_id, state="signing").using_db(conn).update(state="complete"):
        return
    klass = await SchoolClass.filter(id=class_id).using_db(conn).get()
    count = await SchoolRecord.filter(klass_id=class_id).using_db(conn).count()
    text = (f"Lớp <b>{esc(klass.name)}</b> ({esc(klass.year)}): {count} học bạ đã đủ chữ ký, "
            f"kể cả chữ ký phát hành.\n"
            f"Đề nghị quản trị viên xác nhận hoàn tất để xuất hồ sơ.")
    buttons = [[{"label": "Xác nhận hoàn tất", "action": "rec_confirm", "request_id": class_id}]]
    await enqueue_notice(conn, queue, f"classdone:{class_id}:head", "head", text, buttons=buttons)
    for admin in await staff_holding(Role.ADMIN, settings, conn):
        await enqueue_notice(conn, queue, f"classdone:{class_id}:{admin.id}", f"staff:{admin.id}", text,
                             buttons=buttons)


def file_stem(student_code: str, name: str) -> str:
    """A portable file name for a record: "HS001_Nguyen_Van_An"."""
    ascii_name = re.sub(r"[^A-Za-z0-9]+", "_", strip_diacritics(name)).strip("_")
    return f"{student_code}_{ascii_name}"[:120]


async def manifest_entry(record: SchoolRecord) -> tuple[str, bytes, dict[str, Any]]:
    """One record's file name, signed PDF and manifest entry (hash, revision, signatures): what the export
    writes and what a portal package carries (core/signing/portal.py)."""
    pdf = bytes(record.pdf)
    name = file_stem(record.student_code, record.student_name) + ".pdf"
    steps = await SignatureStep.filter(record_id=record.id).order_by("signed_at", "id")
    return name, pdf, {"student_code": record.student_code, "student_name": record.student_name, "file": name,
                       "sha256": hashlib.sha256(pdf).hexdigest(), "revision": record.revision, "state": record.state,
                       "signatures": [{"field": s.field, "stage": s.stage, "signer": s.signed_by,
                                       "signed_at": s.signed_at.isoformat() if s.signed_at else None}
                                      for s in steps]}


def class_manifest(klass: SchoolClass, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The manifest of a class: school, year, class, its records' entries, who confirmed it and when."""
    return {"school": klass.school, "year": klass.year, "class": klass.name, "records": entries,
            "confirmed_by": klass.confirmed_by,
            "confirmed_at": klass.confirmed_at.isoformat() if klass.confirmed_at else None}


FullCheck = Callable[[list[tuple[bytes, tuple[str, ...] | None]]], Awaitable[list[Any]]]


def pool_check(signers: Any, settings: Settings) -> FullCheck:
    """The full validation (`verify.verify_record`) of records in the signing pool's processes, against the
    school's trust anchors: what an export runs before it writes anything."""
    from edudesk.core.signing.trust import trust_material

    roots, crls = trust_material(settings)

    async def check(items: list[tuple[bytes, tuple[str, ...] | None]]) -> list[Any]:
        return list(await signers.pool().validate(items, trusted_roots=roots, crls=crls))

    return check


async def validate_records(records: list[SchoolRecord], check: FullCheck) -> None:
    """Every signed record of the export validated in full (every signature, every revision after it); raises
    naming the records that fail, so nothing unproven leaves the school."""
    signed = [r for r in records if r.state == "signed"]
    fields: dict[int, list[str]] = {}
    for step in await SignatureStep.filter(record_id__in=[r.id for r in signed]).values("record_id", "field"):
        fields.setdefault(step["record_id"], []).append(step["field"])
    reports = await check([(bytes(r.pdf), tuple(fields.get(r.id, ()))) for r in signed])
    bad = []
    for record, report in zip(signed, reports, strict=True):
        if not report.ok:
            problems = [*report.problems, *(p for s in report.signatures for p in s.problems)]
            bad.append(f"{record.student_code} {record.student_name} ({'; '.join(problems[:2])})")
    if bad:
        raise EdudeskError(f"{len(bad)} học bạ không qua kiểm tra chữ ký đầy đủ nên chưa xuất: {', '.join(bad[:5])}"
                           + (" …" if len(bad) > 5 else ""), code="export_invalid")


async def export_class(class_id: int, out: Path, *, require_confirmed: bool = True,
                       on_progress: OnProgress | None = None, check: FullCheck | None = None) -> dict[str, Any]:
    """Write the signed PDFs of a class and `manifest.json` to `out`; returns the manifest.
    `on_progress(done, total)` counts the records written. `check` (`pool_check`): every signed record is
    validated in full first, and nothing is written when one fails."""
    from edudesk.core.signing.revisions import add_history

    klass = await SchoolClass.get_or_none(id=class_id)
    if klass is None:
        raise EdudeskError("Không có lớp này.", code="not_found")
    if require_confirmed and klass.state not in ("confirmed", "exported"):
        raise EdudeskError(f"Lớp {klass.name} chưa được quản trị viên xác nhận hoàn tất.", code="not_confirmed")
    records = await SchoolRecord.filter(klass_id=class_id).order_by("student_code")
    if check is not None:
        await validate_records(records, check)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for done, record in enumerate(records):
        if on_progress is not None:
            on_progress(done, len(records))
        name, pdf, entry = await manifest_entry(record)
        if await add_history(out, record, entry):  # archived revisions under revisions/; a withdrawn one only there
            (out / name).write_bytes(pdf)
        entries.append(entry)
    if on_progress is not None:
        on_progress(len(records), len(records))
    manifest = class_manifest(klass, entries)
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    if klass.state == "confirmed":
        await SchoolClass.filter(id=class_id).update(state="exported")
    return manifest
