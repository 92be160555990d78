"""Revisions of a record: the one way besides signing that changes `SchoolRecord.pdf`. A record's current PDF is
archived as it was (`RecordRevision`: the bytes with the signatures it had, their SHA-256, why, who, when) and a
corrected PDF takes its place with the signature fields of its steps; every step starts again from stage 1 for
that record only. Used by the correction after Báo sai sót (correction.py) and by an adjustment once its
minutes are signed (changes.py); a withdrawal only archives. The export writes the chain (`add_history`)."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F

from edudesk.core.config import Settings
from edudesk.core.errors import EdudeskError
from edudesk.core.jobs import JobQueue
from edudesk.core.ports import Clock
from edudesk.core.signing import stages
from edudesk.core.signing.complete import file_stem
from edudesk.core.signing.lifemodels import RecordChange, RecordRevision, RevisionKind
from edudesk.core.signing.models import (
    ClassState,
    RecordState,
    SchoolClass,
    SchoolRecord,
    SignatureStep,
    StepState,
)
from edudesk.core.signing.order import set_leadership_turns
from edudesk.core.signing.turns import open_steps

REOPENED = (ClassState.COMPLETE, ClassState.CONFIRMED, ClassState.EXPORTED)  # a class signing again


async def prepare(record: SchoolRecord, exported: bytes) -> bytes:
    """The corrected record with the signature fields of its steps, as the import makes them (RecordPdfError for
    a file that is not a PDF, is encrypted or already signed)."""
    from edudesk.core.signing.importer import field_specs
    from edudesk.core.signing.pdfs import add_signature_fields

    steps = await SignatureStep.filter(record_id=record.id).order_by("id")
    fields = await field_specs(record.klass_id, steps)
    # fpdf/pyHanko work of a few hundred milliseconds: in a thread, so the console and the bot keep answering.
    return await asyncio.to_thread(add_signature_fields, exported, fields)


async def archive(conn: BaseDBAsyncClient, record: SchoolRecord, kind: RevisionKind, *, actor: str, at: datetime,
                  reason: str = "", record_return_id: int | None = None,
                  change_id: int | None = None) -> RecordRevision:
    """Keep the record's current PDF exactly as it is, as its revision `record.revision`."""
    pdf = bytes(record.pdf)
    return await RecordRevision.create(record_id=record.id, number=record.revision, kind=kind, reason=reason,
                                       pdf=pdf, sha256=hashlib.sha256(pdf).hexdigest(), signatures=record.signatures,
                                       actor=actor[:200], created_at=at, record_return_id=record_return_id,
                                       change_id=change_id, using_db=conn)


async def restart(conn: BaseDBAsyncClient, settings: Settings, clock: Clock, queue: JobQueue, record: SchoolRecord,
                  *, prepared: bytes, exported: bytes, from_state: RecordState) -> bool:
    """The next revision of the record: `prepared` becomes its PDF (`exported` its original), every step waits
    again, the first stage opens (the notices go out as for a new turn). Compares and swaps the version the
    caller read; returns whether the record's class, complete or issued, was opened for signing again."""
    now = clock.now()
    saved = await SchoolRecord.filter(id=record.id, version=record.version, state=from_state).using_db(conn).update(
        original=exported, pdf=prepared, state=RecordState.SIGNING, stage=1, signatures=0,
        revision=F("revision") + 1, version=F("version") + 1, held_by=None, updated_at=now)
    if not saved:
        raise EdudeskError("Học bạ vừa thay đổi (có người vừa ký hoặc xử lý); hãy thử lại.", code="stale")
    await SignatureStep.filter(record_id=record.id).using_db(conn).update(
        state=StepState.WAITING, opened_at=None, deadline=None, notified_at=None, reminded_at=None,
        escalated_at=None, signed_at=None, signed_by="", session_id=None, prepared=None)
    await set_leadership_turns(conn, settings, record.klass_id, [record.id])
    steps = await SignatureStep.filter(record_id=record.id).order_by("id").using_db(conn)
    advance = stages.first_turns([stages.StepState(s.id, s.stage, s.state, s.teacher_id, s.turn) for s in steps])
    await open_steps(conn, queue, settings, clock, record.klass_id, advance.opened)
    return bool(await SchoolClass.filter(id=record.klass_id, state__in=list(REOPENED)).using_db(conn).update(
        state=ClassState.SIGNING))


async def chain(record_id: int) -> list[RecordRevision]:
    """The archived revisions of a record, oldest first."""
    return await RecordRevision.filter(record_id=record_id).order_by("number", "id")


def revision_file(record: SchoolRecord, number: int) -> str:
    """Where an archived revision goes in an export: "revisions/HS001_Nguyen_Van_An.r0.pdf"."""
    return f"revisions/{file_stem(record.student_code, record.student_name)}.r{number}.pdf"


def minutes_file(record: SchoolRecord, change: RecordChange) -> str:
    """Where the signed minutes of a change go in an export."""
    return f"revisions/{file_stem(record.student_code, record.student_name)}.bb{change.id}.pdf"


async def history(record: SchoolRecord, out: Path | None = None) -> list[dict[str, Any]]:
    """The record's chain of archived revisions as manifest entries (reason, hash, who, when, the minutes that
    decided it); with `out`, each revision's PDF and each signed minutes are written beneath it."""
    entries = []
    for rev in await chain(record.id):
        entry: dict[str, Any] = {"revision": rev.number, "kind": rev.kind, "reason": rev.reason,
                                 "sha256": rev.sha256, "signatures": rev.signatures, "by": rev.actor,
                                 "at": rev.created_at.isoformat(), "file": revision_file(record, rev.number),
                                 "minutes": None}
        if out is not None:
            _write(out, entry["file"], bytes(rev.pdf))
        if rev.record_return_id is not None:
            await rev.fetch_related("record_return")
            if rev.record_return is not None:  # who sent it back (Báo sai sót); `by` approved and replaced it
                entry["reported_by"] = rev.record_return.actor
        if rev.change_id is not None:
            change = await RecordChange.get(id=rev.change_id)
            minutes = await SchoolRecord.get(id=change.minutes_id)
            signed = bytes(minutes.pdf)
            entry["minutes"] = {"number": change.number, "kind": change.kind, "file": minutes_file(record, change),
                                "sha256": hashlib.sha256(signed).hexdigest(), "signatures": minutes.signatures,
                                "signed_at": change.done_at.isoformat() if change.done_at else None}
            if out is not None:
                _write(out, entry["minutes"]["file"], signed)
        entries.append(entry)
    return entries


def _write(out: Path, name: str, data: bytes) -> None:
    path = out / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


async def add_history(out: Path, record: SchoolRecord, entry: dict[str, Any]) -> bool:
    """Put the record's chain of revisions into its export entry (and files under `out/revisions/`); whether
    its current PDF belongs in the export (a withdrawn record is there only as history)."""
    entry["revisions"] = await history(record, out)
    if record.state == RecordState.WITHDRAWN:
        entry["file"] = None
        return False
    return True
