"""The operator's view from the shared database: is this replica ready, and the figures `/metrics` shows.

Every figure is an SQL aggregate over the shared tables, so any replica answers the same numbers; the two
process counters (chat sends and the platforms' 429 answers) are per process and summed by Prometheus.
Nothing here names a person: counts by state, kind, channel and back end only.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from tortoise.connection import connections
from tortoise.functions import Count, Min

from edudesk.core.accounts.models import AccountLog
from edudesk.core.config import Settings
from edudesk.core.intake.models import ChannelHealth, InboundMail
from edudesk.core.jobs import JobState
from edudesk.core.models import Job
from edudesk.core.ports import Clock
from edudesk.core.requests.models import Request, RequestPerson
from edudesk.core.requests.workflow import OPEN_STATES
from edudesk.core.signing.models import SignatureStep, StepState

DB_TIMEOUT_SECONDS = 2.0  # a database that does not answer `SELECT 1` within this is not ready


class ChatCounters:
    """Messages sent to chat platforms and 429 ("too many requests") answers, per surface, in this process.

    The bot adapters call `sent`/`throttled` where they talk to the platform; `/metrics` reads `snapshot`."""

    def __init__(self) -> None:
        self._sent: Counter[str] = Counter()
        self._throttled: Counter[str] = Counter()

    def sent(self, surface: str) -> None:
        """Count one message sent (or edited) on `surface`."""
        self._sent[surface] += 1

    def throttled(self, surface: str) -> None:
        """Count one 429 answer from `surface`."""
        self._throttled[surface] += 1

    def snapshot(self) -> tuple[dict[str, int], dict[str, int]]:
        """Copies of the sends and the 429s by surface."""
        return dict(self._sent), dict(self._throttled)


CHAT_COUNTS = ChatCounters()  # one per process, like the platforms' sessions it counts


class Beating(Protocol):
    """The job worker as readiness sees it: when its loop last turned (`time.monotonic()`), None if not running."""

    beat: float | None


@dataclass(frozen=True)
class Check:
    """One readiness check: its name, whether it passed, and a short reason (never personal data)."""

    name: str
    ok: bool
    reason: str = ""


@dataclass(frozen=True)
class Readiness:
    """Every check; ready when all passed."""

    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """All checks passed."""
        return all(c.ok for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        """`{"status": "ok"|"failing", "checks": {name: {"ok": ..., "reason": ...}}}`."""
        return {"status": "ok" if self.ok else "failing",
                "checks": {c.name: {"ok": c.ok, "reason": c.reason} for c in self.checks}}


async def _database(timeout: float) -> Check:
    try:
        await asyncio.wait_for(connections.get("default").execute_query("SELECT 1"), timeout)
    except TimeoutError:
        return Check("database", False, f"no answer within {timeout:g} s")
    except Exception as exc:  # noqa: BLE001 - any failure means not ready; the type says which
        return Check("database", False, type(exc).__name__)
    return Check("database", True)


def _worker(worker: Beating, stale_after: float) -> Check:
    if worker.beat is None:
        return Check("jobs", False, "worker not running")
    age = time.monotonic() - worker.beat
    if age > stale_after:
        return Check("jobs", False, f"worker silent for {age:.0f} s")
    return Check("jobs", True)


async def readiness(settings: Settings, *, worker: Beating | None = None,
                    db_timeout: float = DB_TIMEOUT_SECONDS) -> Readiness:
    """Database, job worker (when this process runs one) and channels; a channel counts as failing once it has
    failed as often in a row as staff are alerted after (`[imap].alert_after_failures`), not at its first error."""
    db = await _database(db_timeout)
    checks = [db]
    if worker is not None:
        # A worker whose loop has not turned for a lease is as good as dead: its jobs are taken over.
        checks.append(_worker(worker, max(settings.jobs.lease_seconds, 3 * settings.jobs.poll_interval_seconds)))
    if db.ok:
        threshold = max(1, settings.imap.alert_after_failures)
        failing = await ChannelHealth.filter(ok=False, failures__gte=threshold).order_by("channel").values_list(
            "channel", "failures")
        for channel, failures in failing:
            checks.append(Check(f"channel:{channel}", False, f"failing ({failures} in a row)"))
    return Readiness(tuple(checks))


@dataclass
class Figures:
    """What `/metrics` shows, read at scrape time; keys are label values, values counts or seconds."""

    mails: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (source, state, outcome)
    jobs: dict[tuple[str, str], int] = field(default_factory=dict)  # (kind, state); done jobs are not counted
    oldest_due: dict[str, float] = field(default_factory=dict)  # kind -> seconds the oldest due job has waited
    requests: dict[str, int] = field(default_factory=dict)  # state -> count
    overdue: dict[str, int] = field(default_factory=dict)  # open state -> requests past their deadline
    signatures_last_minute: int = 0
    failed_rows: dict[str, int] = field(default_factory=dict)  # backend -> rows whose provisioning failed
    provision_errors: dict[str, int] = field(default_factory=dict)  # backend -> failed directory changes ever
    channels_failing: dict[str, int] = field(default_factory=dict)  # channel -> failures in a row (0: fine)


def _aware(value: Any) -> datetime:
    """An aggregate's datetime: SQLite hands `MIN()` back as text."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def figures(settings: Settings, clock: Clock) -> Figures:
    """Every figure by SQL aggregates (GROUP BY), never by loading rows."""
    now = clock.now()
    out = Figures()
    for row in await InboundMail.annotate(n=Count("id")).group_by("source", "state", "outcome").values(
            "source", "state", "outcome", "n"):
        out.mails[(row["source"], row["state"], row["outcome"])] = row["n"]
    for row in await Job.exclude(state=JobState.DONE).annotate(n=Count("id")).group_by("kind", "state").values(
            "kind", "state", "n"):
        out.jobs[(row["kind"], row["state"])] = row["n"]
    for row in await Job.filter(state=JobState.PENDING, run_after__lte=now).annotate(
            oldest=Min("run_after")).group_by("kind").values("kind", "oldest"):
        out.oldest_due[row["kind"]] = max(0.0, (now - _aware(row["oldest"])).total_seconds())
    for row in await Request.annotate(n=Count("id")).group_by("state").values("state", "n"):
        out.requests[row["state"]] = row["n"]
    for row in await Request.filter(state__in=[str(s) for s in OPEN_STATES], deadline__lt=now).annotate(
            n=Count("id")).group_by("state").values("state", "n"):
        out.overdue[row["state"]] = row["n"]
    out.signatures_last_minute = await SignatureStep.filter(
        state=StepState.SIGNED, signed_at__gte=now - timedelta(minutes=1)).count()
    for row in await RequestPerson.filter(outcome="failed").annotate(n=Count("id")).group_by(
            "request__population").values("request__population", "n"):
        backend = settings.provisioning.backend_for(row["request__population"])
        out.failed_rows[backend] = out.failed_rows.get(backend, 0) + row["n"]
    # The account log is append-only: its failed changes ("taken" is an answer, not an error) only grow.
    for row in await AccountLog.filter(ok=False).exclude(action="taken").annotate(n=Count("id")).group_by(
            "backend").values("backend", "n"):
        out.provision_errors[row["backend"]] = row["n"]
    for channel, failures, ok in await ChannelHealth.all().values_list("channel", "failures", "ok"):
        out.channels_failing[channel] = 0 if ok else failures
    return out
