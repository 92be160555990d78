"""The archive of reports made: every BM03 file is kept with its period, who made it and when, for good.

No retention rule touches `report_archive` (the procedure keeps the soft copy permanently); each report
archived is also an audit event, so the trail shows who made which report even to someone without the file.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from tortoise.transactions import in_transaction

from edudesk.core.models import AuditEvent
from edudesk.core.reports.figures import Period
from edudesk.core.reports.models import ReportArchive

FORMATS = ("xlsx", "pdf")
# What the console's list shows: everything but the file itself.
LISTED = ("id", "kind", "period_start", "period_end", "unit", "lang", "fmt", "filename", "size", "sha256",
          "made_by", "made_at", "scheduled")


async def archive_report(*, kind: str, period: Period, lang: str, fmt: str, filename: str, content: bytes,
                         made_by: str, now: datetime, scheduled: bool = False) -> ReportArchive:
    """Keep one report file made for `period`, and audit who made it."""
    if fmt not in FORMATS:
        raise ValueError(f"report format {fmt!r} is not one of {FORMATS}")
    digest = hashlib.sha256(content).hexdigest()
    async with in_transaction() as conn:
        report = await ReportArchive.create(
            kind=kind, period_start=period.start, period_end=period.end, unit=period.unit, lang=lang, fmt=fmt,
            filename=filename, content=content, size=len(content), sha256=digest, made_by=made_by, made_at=now,
            scheduled=scheduled, using_db=conn)
        await AuditEvent.create(at=now, actor=made_by, action="report_made", using_db=conn, detail={
            "report_id": report.id, "kind": kind, "period_start": period.start.isoformat(),
            "period_end": period.end.isoformat(), "unit": period.unit, "fmt": fmt, "lang": lang,
            "sha256": digest, "scheduled": scheduled})
    return report


async def list_reports(limit: int = 100) -> list[ReportArchive]:
    """The reports made, newest first, without their files (`content` is not loaded)."""
    return await ReportArchive.all().order_by("-made_at", "-id").limit(limit).only(*LISTED)


async def get_report(report_id: int) -> ReportArchive | None:
    """One archived report with its file, or None."""
    if not 0 < report_id < 2**63:  # ids from URLs are untrusted: past BIGINT they are simply unknown
        return None
    return await ReportArchive.get_or_none(id=report_id)
