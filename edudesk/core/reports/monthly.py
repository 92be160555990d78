"""The monthly BM03 (`[reports].monthly`): on the 1st of each month at `monthly_hour` local time, the previous
month's report is made (.xlsx and .pdf), archived, and mailed to every active `head` with an address.

Once, even with several replicas and after a crash: the schedule only enqueues a job whose idempotency key names
the month; the job reuses a file already archived for that month, and each mail has its own key. A service that
was down on the 1st makes the report when it comes back, still once.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tortoise.transactions import in_transaction

from edudesk.core.config import Settings
from edudesk.core.jobs import Handlers, JobKind, JobQueue
from edudesk.core.models import AuditEvent, Job
from edudesk.core.people.models import Staff
from edudesk.core.people.staff import Role
from edudesk.core.ports import Clock
from edudesk.core.reports.archive import archive_report
from edudesk.core.reports.bm03 import bm03_figures
from edudesk.core.reports.figures import Bm03Figures, Period
from edudesk.core.reports.models import ReportArchive
from edudesk.core.requests.mailqueue import mail_context, queue_mail

log = logging.getLogger(__name__)
CHECK_EVERY_SECONDS = 300.0  # the schedule is "on the 1st at 07:00"; five minutes late is on time
FORMATS = ("xlsx", "pdf")


def month_due(settings: Settings, now: datetime) -> tuple[date, date] | None:
    """The previous month (first and last day) once this month's 1st has reached the report hour; else None."""
    local = now.astimezone(ZoneInfo(settings.general.timezone))
    first = local.replace(day=1, hour=settings.reports.monthly_hour, minute=0, second=0, microsecond=0)
    if local < first:
        return None
    end = first.date() - timedelta(days=1)
    return end.replace(day=1), end


def report_key(start: date) -> str:
    """The job's idempotency key: one monthly report per month, whoever enqueues it."""
    return f"report:bm03:monthly:{start:%Y-%m}"


async def schedule_monthly(settings: Settings, clock: Clock, queue: JobQueue) -> bool:
    """Enqueue the due month's report unless it already is; True when this call enqueued it."""
    if not settings.reports.monthly:
        return False
    due = month_due(settings, clock.now())
    if due is None:
        return False
    start, end = due
    key = report_key(start)
    if await Job.filter(key=key).exists():
        return False
    await queue.enqueue(JobKind.MONTHLY_REPORT, key, {"start": start.isoformat(), "end": end.isoformat()})
    queue.wake()
    return True


async def watch_reports(settings: Settings, clock: Clock, queue: JobQueue) -> None:
    """For the supervisor (on the replica holding the reports lead): check the schedule every few minutes."""
    while True:
        await schedule_monthly(settings, clock, queue)
        await asyncio.sleep(CHECK_EVERY_SECONDS)


def _writers() -> dict[str, Any]:
    from edudesk.core.reports.pdf import bm03_pdf
    from edudesk.core.reports.xlsx import bm03_xlsx

    return {"xlsx": bm03_xlsx, "pdf": bm03_pdf}


class MonthlyReportJob:
    """The `monthly_report` job: make, archive and mail one month's BM03."""

    def __init__(self, settings: Settings, clock: Clock, queue: JobQueue) -> None:
        self.settings = settings
        self.clock = clock
        self.queue = queue

    def handlers(self) -> Handlers:
        """The job this module runs."""
        return {JobKind.MONTHLY_REPORT: self}

    async def _files(self, period: Period, lang: str) -> list[ReportArchive]:
        """The month's archived files, made now where a first run did not get to them."""
        now = self.clock.now()
        figures: Bm03Figures | None = None
        made = []
        for fmt in FORMATS:
            found = await ReportArchive.filter(kind="bm03", scheduled=True, period_start=period.start,
                                               period_end=period.end, unit="", fmt=fmt).only(
                "id", "filename", "size").first()
            if found is None:
                if figures is None:
                    figures = await bm03_figures(self.settings, period, now, lang)
                content = await asyncio.to_thread(_writers()[fmt], figures, lang)
                form = self.settings.institution.report_form or "BM03"
                found = await archive_report(kind="bm03", period=period, lang=lang, fmt=fmt,
                                             filename=f"{form}_{period.start:%Y-%m}.{fmt}", content=content,
                                             made_by="system", now=now, scheduled=True)
            made.append(found)
        return made

    async def __call__(self, job: Job) -> None:
        """Make the files (or find them), then queue one mail per head in one transaction."""
        start, end = date.fromisoformat(job.payload["start"]), date.fromisoformat(job.payload["end"])
        lang = self.settings.reports.language or self.settings.general.language
        period = Period(start=start, end=end, timezone=self.settings.general.timezone)
        files = await self._files(period, lang)
        heads = [s for s in await Staff.filter(active=True).exclude(email="")
                 if Role.HEAD.value in (s.roles or [])]
        now = self.clock.now()
        async with in_transaction() as conn:
            if not heads:
                log.warning("monthly BM03 of %s made, but no active head has a mail address", f"{start:%m/%Y}")
                await AuditEvent.create(at=now, actor="system", action="report_monthly_unsent",
                                        detail={"month": f"{start:%Y-%m}", "reason": "no head with an address"},
                                        using_db=conn)
                return
            for head in heads:
                context = {**mail_context(self.settings, head.name), "lang": lang,
                           "period_start": start.strftime("%d/%m/%Y"), "period_end": end.strftime("%d/%m/%Y"),
                           "month": f"{start:%m/%Y}", "report_form": self.settings.institution.report_form,
                           "report_ids": [f.id for f in files],
                           "files": [f.filename for f in files]}
                await queue_mail(conn, self.queue, self.clock, self.settings, key=f"{job.key}:mail:{head.id}",
                                 template="report_monthly", recipient=head.email, context=context, automatic=False)
            await AuditEvent.create(at=now, actor="system", action="report_monthly_sent",
                                    detail={"month": f"{start:%Y-%m}", "recipients": len(heads),
                                            "reports": [f.id for f in files]}, using_db=conn)
        self.queue.wake()
