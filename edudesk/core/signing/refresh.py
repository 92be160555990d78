"""`records refresh-ltv` and its daily run: issued records keep validating after their certificates expire
only while their archival (document) timestamp chain is renewed in time. Before the last document
timestamp's TSA certificate expires, pyHanko's `update_archival_timestamp_chain` validates that timestamp,
adds its validation data to the DSS and puts a new document timestamp over everything (PAdES B-LTA).

Only records that already carry a document timestamp are renewed (B-LTA); a B-LT record is left as it is.
The PDF in the database is replaced with compare-and-swap on its version, so a record changed meanwhile is
left for the next run; the scheduled run holds a lead (`scheduler:ltv`), so replicas never renew twice.

Archived revisions (`record_revision`: a record before its correction, withdrawal or adjustment) must stay
verifiable as long as the record, so the same run renews them too, compare-and-swap on their SHA-256 (which
then names the renewed file: an incremental update that begins with the bytes as they were retired).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from io import BytesIO
from typing import Any

from tortoise.expressions import F

from edudesk.core.config import Settings
from edudesk.core.errors import ConfigError
from edudesk.core.models import AuditEvent
from edudesk.core.ports import Clock
from edudesk.core.signing.levels import archive_facts
from edudesk.core.signing.lifemodels import RecordRevision
from edudesk.core.signing.models import RecordState, SchoolRecord
from edudesk.core.signing.pades import PadesBatch, PadesProfile, pades_profile

log = logging.getLogger(__name__)
CHECK_EVERY_SECONDS = 6 * 3600.0
CHUNK = 50  # records read from the database at a time (each PDF is a few hundred KB)


@dataclass(frozen=True)
class RefreshResult:
    """What a run did: issued records looked at and renewed, archived revisions looked at and renewed, and the
    renewals that failed, of either (left for the next run)."""

    checked: int = 0
    refreshed: int = 0
    failed: int = 0
    revisions_checked: int = 0
    revisions_refreshed: int = 0


def expiry(pdf: bytes) -> datetime | None:
    """When the record's last document timestamp's TSA certificate expires (None: no document timestamp)."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    from edudesk.core.signing.speedups import install_fast_pdf_parsing

    install_fast_pdf_parsing()
    return archive_facts(PdfFileReader(BytesIO(pdf), strict=False)).expires


async def refresh_pdf(pdf: bytes, profile: PadesProfile) -> bytes:
    """The record with its last timestamp's validation data and a new document timestamp after it."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.signers import PdfTimeStamper

    batch = PadesBatch(profile)
    try:
        stamper = PdfTimeStamper(batch.timestamper())
        out = await stamper.async_update_archival_timestamp_chain(
            PdfFileReader(BytesIO(pdf), strict=False), batch.context(), in_place=False, output=BytesIO())
    finally:
        await batch.aclose()
    return bytes(out.getvalue())


async def refresh_records(settings: Settings, clock: Clock, *, before_days: float | None = None) -> RefreshResult:
    """Renew every issued record, and every archived revision, whose archival timestamp expires within
    `before_days` (`[records] refresh_before_days` by default)."""
    if not settings.records.tsa_url:
        raise ConfigError("Chưa cấu hình [records] tsa_url: không có dịch vụ cấp dấu thời gian để gia hạn dấu thời "
                          "gian lưu trữ của học bạ.", code="config_records")
    days = settings.records.refresh_before_days if before_days is None else before_days
    limit = clock.now() + timedelta(days=days)
    profile = pades_profile(settings)
    checked, refreshed, failed = await _renew_all(
        SchoolRecord.filter(state=RecordState.SIGNED), limit, profile, lambda r: f"record {r.id}",
        lambda r, pdf, until: _save(r, pdf, clock, until))
    revisions_checked, revisions_refreshed, revisions_failed = await _renew_all(
        RecordRevision.all(), limit, profile, lambda r: f"revision {r.number} of record {r.record_id}",
        lambda r, pdf, until: _save_revision(r, pdf, clock, until))
    return RefreshResult(checked, refreshed, failed + revisions_failed, revisions_checked, revisions_refreshed)


async def _renew_all(query: Any, limit: datetime, profile: PadesProfile, what: Callable[[Any], str],
                     save: Callable[[Any, bytes, datetime], Awaitable[bool]]) -> tuple[int, int, int]:
    """Every row of `query` (a chunk at a time, by id) whose archival timestamp is due, renewed and saved:
    (checked, renewed, failed)."""
    checked = renewed = failed = 0
    last_id = 0
    while rows := await query.filter(id__gt=last_id).order_by("id").limit(CHUNK):
        last_id = rows[-1].id
        for row in rows:
            checked += 1
            due = await _renewal(bytes(row.pdf), limit, profile, what(row))
            if due is None:
                continue
            pdf, until = due
            if pdf is None:
                failed += 1
            elif await save(row, pdf, until):
                renewed += 1
    return checked, renewed, failed


async def _renewal(pdf: bytes, limit: datetime, profile: PadesProfile,
                   what: str) -> tuple[bytes | None, datetime] | None:
    """None when the PDF's archival timestamp is not due (or it has none); else the renewed PDF (None when the
    renewal failed: left for the next run) and when the last timestamp's TSA certificate expires."""
    until = await asyncio.to_thread(expiry, pdf)
    if until is None or until > limit:
        return None
    try:  # pyHanko's validation and hashing: off the service's event loop
        return await asyncio.to_thread(asyncio.run, refresh_pdf(pdf, profile)), until
    except Exception as exc:  # noqa: BLE001 - one record (or the TSA) failing leaves the others
        log.warning("archival timestamp of %s not renewed: %r", what, exc)
        return None, until


async def _save(record: SchoolRecord, pdf: bytes, clock: Clock, until: datetime) -> bool:
    now = clock.now()
    # `updated_at` stays: the record says the same and is signed the same, only an archival timestamp follows its
    # bytes; the portal's accepted copy is still this record (sending.changed_since_sent), not sent again.
    saved = await SchoolRecord.filter(id=record.id, version=record.version).update(
        pdf=pdf, version=F("version") + 1)
    if saved:
        await AuditEvent.create(at=now, actor="system", action="record_ltv_refreshed",
                                detail={"record": record.id, "expired_at": until.isoformat()})
    return bool(saved)


async def _save_revision(rev: RecordRevision, pdf: bytes, clock: Clock, until: datetime) -> bool:
    """Store a renewed archived revision unless it changed meanwhile (another replica, a manual run)."""
    saved = await RecordRevision.filter(id=rev.id, sha256=rev.sha256).update(
        pdf=pdf, sha256=hashlib.sha256(pdf).hexdigest())
    if saved:
        await AuditEvent.create(at=clock.now(), actor="system", action="record_ltv_refreshed",
                                detail={"record": rev.record_id, "revision": rev.number,
                                        "expired_at": until.isoformat()})
    return bool(saved)


async def watch_ltv(settings: Settings, clock: Clock) -> None:
    """For the supervisor (on the replica holding the `scheduler:ltv` lead): renew what is due, every few hours."""
    while True:
        if settings.records.tsa_url:
            result = await refresh_records(settings, clock)
            if result.refreshed or result.revisions_refreshed or result.failed:
                log.info("archival timestamps: %d records and %d archived revisions renewed, %d failed, %d records "
                         "and %d revisions checked", result.refreshed, result.revisions_refreshed, result.failed,
                         result.checked, result.revisions_checked)
        await asyncio.sleep(CHECK_EVERY_SECONDS)
