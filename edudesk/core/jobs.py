"""Durable jobs (transactional outbox): enqueue with the state change, claim, run, retry, dead-letter."""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import OperationalError
from tortoise.expressions import F, Q
from tortoise.transactions import in_transaction

from edudesk.core.config import JobSettings
from edudesk.core.models import AuditEvent, Job
from edudesk.core.ports import Clock

log = logging.getLogger(__name__)

Handler = Callable[[Job], Awaitable[None]]


class JobKind(enum.StrEnum):
    """Every kind of durable job; the value is what the `job.kind` column stores. Each package registers
    the handlers of its own kinds (`handlers()` beside the code); main.py only composes them."""

    PROCESS_MAIL = "process_mail"  # core/intake/pipeline.py IntakePipeline.job
    SEND_MAIL = "send_mail"  # mailer/delivery.py MailDelivery
    REFRESH_CARDS = "refresh_cards"  # core/chats ChatHub.refresh_cards
    CHAT_NOTICE = "chat_notice"  # core/chats ChatHub.notice
    PROVISION = "provision"  # core/provisioning/job.py ProvisionJob
    DELETE_ACCOUNT = "delete_account"  # core/provisioning/removal.py DeleteAccountJob
    RESTORE_ACCOUNT = "restore_account"  # core/provisioning/removal.py RestoreAccountJob (a kept account)
    SIGN_NOTICE = "sign_notice"  # core/signing/turns.py sign_notice
    SIGN_BATCH = "sign_batch"  # core/signing/runner.py SignRunner.sign_batch
    SIGN_POLL = "sign_poll"  # core/signing/runner.py SignRunner.sign_poll
    SIGN_ISSUE = "sign_issue"  # core/signing/runner.py SignRunner.sign_issue
    ZALO_EVENT = "zalo_event"  # bot/zalo/app.py ZaloSurface.event
    MONTHLY_REPORT = "monthly_report"  # core/reports/monthly.py MonthlyReportJob
    PORTAL_SEND = "portal_send"  # core/signing/portaljob.py PortalSendJob


class JobState(enum.StrEnum):
    """Where a job is: waiting (or retrying), claimed by a worker under a lease, finished, or parked."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    DEAD = "dead"


Handlers = dict[JobKind, Handler]
URGENT_KINDS = (JobKind.PROCESS_MAIL, JobKind.REFRESH_CARDS)
AGED_SECONDS = 2.0  # a job due this long is served in turn with the urgent kinds (an acknowledgement in a burst)
LOCKED_RETRY_SECONDS = 1.0  # a step that met "database is locked" (another process writing SQLite) runs again


def database_locked(exc: BaseException) -> bool:
    """Whether `exc` is SQLite's "database is locked"/"busy": another process held the file; try again."""
    text = str(exc).lower()
    return isinstance(exc, OperationalError) and ("database is locked" in text or "database is busy" in text)


class PermanentJobError(Exception):
    """A job that can never succeed (bad payload, refused for good): park it at once."""


class RetryLater(Exception):
    """Not a failure: the job cannot go yet (a chat's rate limit); run it again after `delay` seconds
    without counting an attempt, and free the worker slot meanwhile."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"retry in {delay:.2f} s")
        self.delay = delay


class JobQueue:
    """Enqueue and claim jobs; the same class serves SQLite (one worker) and PostgreSQL (SKIP LOCKED)."""

    def __init__(self, clock: Clock, settings: JobSettings) -> None:
        self.clock = clock
        self.settings = settings
        self._wake = asyncio.Event()

    async def enqueue(
        self,
        kind: JobKind,
        key: str,
        payload: dict[str, Any] | None = None,
        *,
        connection: BaseDBAsyncClient | None = None,
        run_after: datetime | None = None,
    ) -> None:
        """Add a job unless one with this idempotency key exists; call inside the caller's transaction."""
        now = self.clock.now()
        job = Job(kind=kind, key=key, payload=payload or {}, run_after=run_after or now, created_at=now)
        await Job.bulk_create([job], ignore_conflicts=True, using_db=connection)
        self._wake.set()

    async def enqueue_many(self, jobs: Sequence[tuple[JobKind, str, dict[str, Any]]], *,
                           connection: BaseDBAsyncClient | None = None) -> None:
        """Add several jobs (kind, key, payload) in one statement, each unless its key exists."""
        now = self.clock.now()
        rows = [Job(kind=kind, key=key, payload=payload, run_after=now, created_at=now) for kind, key, payload in jobs]
        if rows:
            await Job.bulk_create(rows, ignore_conflicts=True, using_db=connection)
            self._wake.set()

    def wake(self) -> None:
        """Tell the worker new jobs are there (after a commit)."""
        self._wake.set()

    async def wait(self, timeout: float) -> None:
        """Sleep until woken or `timeout` seconds pass."""
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            pass
        self._wake.clear()

    async def claim(self, limit: int, done: Sequence[Job] = ()) -> list[Job]:
        """Lease up to `limit` due jobs (pending, or running with an expired lease after a crash); the `done`
        jobs this worker finished are marked done in the same transaction."""
        now = self.clock.now()
        lease = now + timedelta(seconds=self.settings.lease_seconds)
        due = Q(state=JobState.PENDING, run_after__lte=now) | Q(state=JobState.RUNNING, locked_until__lt=now)
        async with in_transaction() as conn:
            await self._complete(conn, done, now)
            if limit <= 0:
                return []
            # Mail waiting to become a request goes first: in a burst, the acknowledgements can wait, but
            # not for long: one due for `AGED_SECONDS` joins the urgent ones in order of arrival, so it
            # goes out within seconds, and the backpressure on the listener holds senders meanwhile.
            first = Q(kind__in=URGENT_KINDS) | Q(run_after__lte=now - timedelta(seconds=AGED_SECONDS))
            rows = await self._due(conn, due & first, limit)
            if len(rows) < limit:
                rows += await self._due(conn, due & ~first, limit - len(rows))
            return await self._lease(conn, rows, due, lease)

    @staticmethod
    async def _lease(conn: BaseDBAsyncClient, rows: list[Job], due: Q, lease: datetime) -> list[Job]:
        """Lease the selected jobs with one statement. The due condition is repeated in it, so exactly one
        claimer wins each job even without row locks (SQLite); when fewer rows changed than were selected,
        the winners are read back."""
        if not rows:
            return []
        ids = [job.id for job in rows]
        won = await Job.filter(due, id__in=ids).using_db(conn).update(
            state=JobState.RUNNING, locked_until=lease, attempts=F("attempts") + 1)
        if won != len(rows):
            mine = dict(await Job.filter(id__in=ids, state=JobState.RUNNING, locked_until=lease).using_db(conn)
                        .values_list("id", "attempts"))
            rows = [job for job in rows if mine.get(job.id) == job.attempts + 1]
        for job in rows:
            job.state, job.locked_until, job.attempts = JobState.RUNNING, lease, job.attempts + 1
        return rows

    @staticmethod
    async def _complete(conn: BaseDBAsyncClient, jobs: Sequence[Job], now: datetime) -> None:
        """Mark finished jobs done: one statement per attempt count (usually one for the whole batch); a job
        another worker took over since (attempts bumped) is left to its new holder."""
        by_attempts: dict[int, list[int]] = {}
        for job in jobs:
            by_attempts.setdefault(job.attempts, []).append(job.id)
        for attempts, ids in by_attempts.items():
            await Job.filter(id__in=ids, state=JobState.RUNNING, attempts=attempts).using_db(conn).update(
                state=JobState.DONE, finished_at=now, locked_until=None)

    @staticmethod
    async def _due(conn: BaseDBAsyncClient, where: Q, limit: int) -> list[Job]:
        return list(await Job.filter(where).order_by("id").limit(limit).select_for_update(skip_locked=True)
                    .using_db(conn))

    async def renew(self, job_ids: list[int]) -> None:
        """Extend the lease of jobs still running here, so that only a dead worker's jobs are taken over."""
        if job_ids:
            lease = self.clock.now() + timedelta(seconds=self.settings.lease_seconds)
            await Job.filter(id__in=job_ids, state=JobState.RUNNING).update(locked_until=lease)

    async def complete(self, job: Job) -> None:
        """Mark a job done."""
        await self._mine(job).update(state=JobState.DONE, finished_at=self.clock.now(), locked_until=None)

    async def complete_many(self, jobs: Sequence[Job]) -> None:
        """Mark several finished jobs done in one transaction."""
        if jobs:
            async with in_transaction() as conn:
                await self._complete(conn, jobs, self.clock.now())

    @staticmethod
    def _mine(job: Job) -> Any:
        # Still ours: a worker whose lease ran out (and whose job another worker took over, bumping
        # attempts) must not overwrite the new holder's outcome.
        return Job.filter(id=job.id, state=JobState.RUNNING, attempts=job.attempts)

    async def fail(self, job: Job, error: str, *, permanent: bool = False) -> None:
        """Schedule a retry with exponential backoff, or park the job as dead when out of attempts."""
        now = self.clock.now()
        if permanent or job.attempts >= self.settings.max_attempts:
            async with in_transaction() as conn:
                if not await self._mine(job).using_db(conn).update(
                    state=JobState.DEAD, last_error=error[:4000], finished_at=now, locked_until=None
                ):
                    return
                await AuditEvent.create(
                    at=now,
                    actor="system",
                    action="job_dead",
                    request_id=job.payload.get("request_id"),
                    mail_id=job.payload.get("mail_id"),
                    detail={"job": job.id, "kind": job.kind, "error": error[:500]},
                    using_db=conn,
                )
            log.error("job %s (%s) is dead after %s attempts: %s", job.id, job.kind, job.attempts, error)
            return
        delay = min(
            self.settings.backoff_max_seconds,
            self.settings.backoff_initial_seconds * 2 ** (job.attempts - 1),
        )
        delay *= random.uniform(0.8, 1.2)  # jitter so replicas do not retry in lockstep
        await self._mine(job).update(
            state=JobState.PENDING,
            run_after=now + timedelta(seconds=delay),
            last_error=error[:4000],
            locked_until=None,
        )
        log.warning("job %s (%s) failed, retry in %.0f s: %s", job.id, job.kind, delay, error)

    async def defer(self, job: Job, delay: float, note: str = "") -> None:
        """Put a running job back to wait `delay` seconds; the attempt it took is given back. A `note` says why
        on the job's row (the console's dead/waiting lists show it), so a job that keeps waiting is seen."""
        changes: dict[str, Any] = {"last_error": note[:4000]} if note else {}
        await self._mine(job).update(
            state=JobState.PENDING, run_after=self.clock.now() + timedelta(seconds=delay), locked_until=None,
            attempts=max(0, job.attempts - 1), **changes)


class JobWorker:
    """Runs claimed jobs with bounded concurrency; one per process."""

    def __init__(self, queue: JobQueue, handlers: Handlers | None = None) -> None:
        self.queue = queue
        self.handlers: dict[str, Handler] = {}
        self.register(handlers or {})
        self._stopping = asyncio.Event()
        # Jobs whose handler returned, waiting to be marked done with the next claim (one statement for all).
        # Until then a crash re-runs them: handlers are idempotent, and nothing they wrote is lost.
        self._done: list[Job] = []
        self.beat: float | None = None  # time.monotonic() of the run loop's last turn; None: not running (/readyz)

    def register(self, handlers: Handlers) -> None:
        """Add the handlers a package offers for its own job kinds; a kind has exactly one handler."""
        for kind, handler in handlers.items():
            if kind in self.handlers:
                raise ValueError(f"job kind {kind!r} already has a handler")
            self.handlers[JobKind(kind)] = handler

    def stop(self) -> None:
        """Ask the worker to finish the jobs in hand and return."""
        self._stopping.set()
        self.queue.wake()

    async def run_one(self, job: Job) -> None:
        """Run one claimed job and record the outcome; never raises."""
        try:
            await self._run_one(job)
        except OperationalError as exc:
            if not database_locked(exc):
                raise
            # The lease runs out and the job runs again (handlers are safe to re-run).
            log.warning("job %s (%s): outcome not recorded, the database stayed locked", job.id, job.kind)

    async def _run_one(self, job: Job) -> None:
        handler = self.handlers.get(job.kind)
        if handler is None:
            await self.queue.fail(job, f"no handler for job kind {job.kind!r}", permanent=True)
            return
        try:
            await handler(job)
        except PermanentJobError as exc:
            await self.queue.fail(job, str(exc), permanent=True)
        except RetryLater as exc:
            await self.queue.defer(job, exc.delay)
        except OperationalError as exc:
            if not database_locked(exc):
                log.exception("job %s (%s) raised", job.id, job.kind)
                await self.queue.fail(job, f"{type(exc).__name__}: {exc}")
                return
            # Not the job's fault: the CLI (or another process) held the SQLite file past the busy timeout.
            log.warning("job %s (%s) met a locked database; running it again shortly", job.id, job.kind)
            await self.queue.defer(job, LOCKED_RETRY_SECONDS * random.uniform(0.5, 1.5),
                                   note="database is locked by another process (busy timeout passed); waiting")
        except Exception as exc:  # noqa: BLE001 - a job's failure must never stop the worker
            log.exception("job %s (%s) raised", job.id, job.kind)
            await self.queue.fail(job, f"{type(exc).__name__}: {exc}")
        else:
            self._done.append(job)

    async def drain(self) -> int:
        """Run every due job until none is left (for the CLI and tests); returns how many ran."""
        count = 0
        while jobs := await self._claim(self.queue.settings.concurrency):
            async with asyncio.TaskGroup() as tg:
                for job in jobs:
                    tg.create_task(self.run_one(job))
            count += len(jobs)
        return count

    async def _claim(self, limit: int) -> list[Job]:
        """Mark the finished jobs done and claim more, in one transaction; on failure the finished ones wait
        for the next turn."""
        done, self._done = self._done, []
        try:
            return await self.queue.claim(limit, done)
        except BaseException:
            self._done[:0] = done
            raise

    async def flush(self) -> None:
        """Mark the jobs finished since the last claim done now (when the worker stops)."""
        done, self._done = self._done, []
        try:
            await self.queue.complete_many(done)
        except BaseException:
            self._done[:0] = done
            raise

    async def run(self) -> None:
        """Claim and run jobs until stopped, keeping up to `concurrency` in flight."""
        limit = self.queue.settings.concurrency
        running: dict[asyncio.Task[None], int] = {}
        try:
            await self._loop(limit, running)
        finally:
            self.beat = None
            try:
                await self.flush()
            except Exception:  # noqa: BLE001 - unflushed jobs only run again (handlers are idempotent)
                log.warning("could not mark %s finished jobs done; they will run again", len(self._done))

    async def _loop(self, limit: int, running: dict[asyncio.Task[None], int]) -> None:
        async with asyncio.TaskGroup() as tg:
            heartbeat = tg.create_task(self._heartbeat(running))
            while not self._stopping.is_set():
                self.beat = time.monotonic()
                free = limit - len(running)
                try:
                    jobs = await self._claim(free) if free > 0 or self._done else []
                except OperationalError as exc:
                    if not database_locked(exc):
                        raise
                    log.warning("claiming jobs: the database stayed locked; trying again")
                    jobs = []
                for job in jobs:
                    task = tg.create_task(self.run_one(job))
                    running[task] = job.id
                    task.add_done_callback(lambda t: running.pop(t, None))
                    task.add_done_callback(lambda _t: self.queue.wake())
                if not jobs or free <= len(jobs):
                    await self.queue.wait(self.queue.settings.poll_interval_seconds)
            heartbeat.cancel()

    async def _heartbeat(self, running: dict[asyncio.Task[None], int]) -> None:
        """Renew the leases of the jobs in hand every third of a lease."""
        interval = max(0.05, self.queue.settings.lease_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.queue.renew(list(running.values()))
            except Exception:  # noqa: BLE001 - a missed renewal only risks a takeover; try again next time
                log.exception("could not renew job leases")
