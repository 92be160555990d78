"""`records refresh-ltv` and its daily run: issued records keep validating after their certificates expire
only while their archival (document) timestamp chain is renewed in time. Before the last document
timestamp's TSA certificate expires, pyHanko's `update_archival_timestamp_chain` validates that timestamp,
adds its validation data to the DSS and puts a new document timestamp over everything (PAdES B-LTA).

Only records that already carry a document timestamp are renewed (B-LTA); a B-LT record is left as it is.
The PDF in the database is replaced with compare-and-swap on its version, so a record changed meanwhile is
left for the next run; the scheduled run holds a lead (`scheduler:ltv`), so replicas never renew twice.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from io import BytesIO

from tortoise.expressions import F

from edudesk.core.config import Settings
from edudesk.core.errors import ConfigError
from edudesk.core.models import AuditEvent
from edudesk.core.ports import Clock
from edudesk.core.signing.levels import archive_facts
from edudesk.core.signing.models import RecordState, SchoolRecord
from edudesk.core.signing.pades import PadesBatch, PadesProfile, pades_profile

log = logging.getLogger(__name__)
CHECK_EVERY_SECONDS = 6 * 3600.0
CHUNK = 50  # records read from the database at a time (each PDF is a few hundred KB)


@dataclass(frozen=True)
class RefreshResult:
    """What a run did: records looked at, renewed, and those whose renewal failed (left for the next run)."""

    checked: int = 0
    refreshed: int = 0
    failed: int = 0


def expiry(pdf: bytes) -> datetime | None:
    """When the record's last document timestamp's TSA certificate expires (None: no document timestamp)."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    from edudesk.core.signing.engine import install_fast_pdf_parsing

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
    """Renew every issued record whose archival timestamp expires within `before_days` (`[records]
    refresh_before_days` by default)."""
    if not settings.records.tsa_url:
        raise ConfigError("Chưa cấu hình [records] tsa_url: không có dịch vụ cấp dấu thời gian để gia hạn dấu thời "
                          "gian lưu trữ của học bạ.", code="config_records")
    days = settings.records.refresh_before_days if before_days is None else before_days
    limit = clock.now() + timedelta(days=days)
    profile = pades_profile(settings)
    checked = refreshed = failed = 0
    last_id = 0
    while True:
        rows = await SchoolRecord.filter(state=RecordState.SIGNED, id__gt=last_id).order_by("id").limit(CHUNK)
        if not rows:
            break
        last_id = rows[-1].id
        for record in rows:
            checked += 1
            pdf = bytes(record.pdf)
            until = await asyncio.to_thread(expiry, pdf)
            if until is None or until > limit:
                continue
            try:  # pyHanko's validation and hashing: off the service's event loop
                renewed = await asyncio.to_thread(asyncio.run, refresh_pdf(pdf, profile))
            except Exception as exc:  # noqa: BLE001 - one record (or the TSA) failing leaves the others
                log.warning("archival timestamp of record %s not renewed: %r", record.id, exc)
                failed += 1
                continue
            if await _save(record, renewed, clock, until):
                refreshed += 1
    return RefreshResult(checked, refreshed, failed)


async def _save(record: SchoolRecord, pdf: bytes, clock: Clock, until: datetime) -> bool:
    now = clock.now()
    saved = await SchoolRecord.filter(id=record.id, version=record.version).update(
        pdf=pdf, version=F("version") + 1, updated_at=now)
    if saved:
        await AuditEvent.create(at=now, actor="system", action="record_ltv_refreshed",
                                detail={"record": record.id, "expired_at": until.isoformat()})
    return bool(saved)


async def watch_ltv(settings: Settings, clock: Clock) -> None:
    """For the supervisor (on the replica holding the `scheduler:ltv` lead): renew what is due, every few hours."""
    while True:
        if settings.records.tsa_url:
            result = await refresh_records(settings, clock)
            if result.refreshed or result.failed:
                log.info("archival timestamps: %d renewed, %d failed, %d records checked", result.refreshed,
                         result.failed, result.checked)
        await asyncio.sleep(CHECK_EVERY_SECONDS)
