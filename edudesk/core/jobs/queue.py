"""The job queue (transactional outbox): enqueue with the state change, claim in batches, complete, retry,
dead-letter."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Case, F, Q, When
from tortoise.transactions import in_transaction

from edudesk.core.config import JobSettings
from edudesk.core.jobs.kinds import AGED_SECONDS, URGENT_KINDS, DoneWriter, JobKind, JobState
from edudesk.core.models import AuditEvent, Job
from edudesk.core.ports import Clock
from edudesk.core.prepared import Prepared

log = logging.getLogger(__name__)
# The jobs enqueued on one connection inside `JobQueue.gathered` (this task only), written when it ends.
_GATHERED: ContextVar[tuple[BaseDBAsyncClient, list[Job]] | None] = ContextVar("edudesk_gathered_jobs", default=None)
_DONE_WRITES = "_edudesk_done_writes"  # a finished job's writes left for its completion (kinds.write_when_done)


def set_done_writes(job: Job, writes: list[tuple[DoneWriter, Any]]) -> None:
    """Keep with a finished job the writes its handler left for the transaction that marks it done."""
    setattr(job, _DONE_WRITES, writes)


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
        gathered = _GATHERED.get()
        if gathered is not None and connection is gathered[0]:
            gathered[1].append(job)
            return
        await _insert_new(connection, [job])
        self._wake.set()

    @asynccontextmanager
    async def gathered(self, connection: BaseDBAsyncClient) -> AsyncIterator[None]:
        """The jobs this task enqueues on `connection` inside the block are written together as it ends, in
        one statement, still inside the caller's transaction; on an error none is written. Only for a block
        that reads none of the jobs it enqueues."""
        jobs: list[Job] = []
        token = _GATHERED.set((connection, jobs))
        try:
            yield
        finally:
            _GATHERED.reset(token)
        if jobs:
            await _insert_new(connection, jobs)
            self._wake.set()

    async def enqueue_many(self, jobs: Sequence[tuple[JobKind, str, dict[str, Any]]], *,
                           connection: BaseDBAsyncClient | None = None) -> None:
        """Add several jobs (kind, key, payload) in one statement, each unless its key exists."""
        now = self.clock.now()
        rows = [Job(kind=kind, key=key, payload=payload, run_after=now, created_at=now) for kind, key, payload in jobs]
        if rows:
            await _insert_new(connection, rows)
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
        async with in_transaction() as conn:
            await self._complete(conn, done, now)
            if limit <= 0:
                return []
            rows = [Job._init_from_db(**row) for row in
                    await _DUE.rows(conn, (now, now - timedelta(seconds=AGED_SECONDS)), shape=limit)]
            return await self._lease(conn, rows, now, lease)

    @staticmethod
    async def _lease(conn: BaseDBAsyncClient, rows: list[Job], now: datetime, lease: datetime) -> list[Job]:
        """Lease the selected jobs with one statement. The due condition is repeated in it, so exactly one
        claimer wins each job even without row locks (SQLite); when fewer rows changed than were selected,
        the winners are read back."""
        if not rows:
            return []
        ids = [job.id for job in rows]
        won = await _LEASE.count(conn, (now, lease, *ids))
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
            await _COMPLETE.count(conn, (now, attempts, *ids))
        # The writes the handlers left, one call per writer for the whole batch (also for a job another worker
        # took over meanwhile: what its handler did, it did).
        batches: dict[DoneWriter, list[Any]] = {}
        for job in jobs:
            for writer, item in getattr(job, _DONE_WRITES, ()):
                batches.setdefault(writer, []).append(item)
        for writer, items in batches.items():
            await writer(conn, items)

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


def _due(now: datetime) -> Q:
    """Pending and due, or running with an expired lease (its worker died)."""
    return Q(state=JobState.PENDING, run_after__lte=now) | Q(state=JobState.RUNNING, locked_until__lt=now)


# The claim's three statements, built once (see core/prepared.py): each claim sends them.
# Mail waiting to become a request goes first: in a burst, the acknowledgements can wait, but not for long:
# one due for `AGED_SECONDS` joins the urgent ones in order of arrival, so it goes out within seconds, and
# the backpressure on the listener holds senders meanwhile. One statement: the urgent and the aged first,
# then the rest, each in order of arrival.
_DUE = Prepared(lambda conn, limit, now, aged: Job.filter(_due(now)).annotate(
    later=Case(When(Q(kind__in=URGENT_KINDS) | Q(run_after__lte=aged), then="0"), default="1"))
    .order_by("later", "id").limit(limit).select_for_update(skip_locked=True).using_db(conn))
_LEASE = Prepared(lambda conn, _shape, now, lease, *ids: Job.filter(_due(now), id__in=ids).using_db(conn).update(
    state=JobState.RUNNING, locked_until=lease, attempts=F("attempts") + 1))
_COMPLETE = Prepared(lambda conn, _shape, now, attempts, *ids: Job.filter(
    id__in=ids, state=JobState.RUNNING, attempts=attempts).using_db(conn).update(
    state=JobState.DONE, finished_at=now, locked_until=None))

_INSERT: dict[str, tuple[str, list[str]]] = {}  # per SQL dialect: the statement and the fields it takes


async def _insert_new(connection: BaseDBAsyncClient | None, jobs: Sequence[Job]) -> None:
    """Insert jobs, each unless its key exists: what `Job.bulk_create(jobs, ignore_conflicts=True)` sends, with
    the statement built once per dialect instead of once per call (enqueueing is on every hot path)."""
    db = connection if connection is not None else Job._choose_db(True)
    dialect = db.capabilities.dialect
    if dialect not in _INSERT:
        executor = db.executor_class(model=Job, db=db)
        fields, columns = executor._prepare_insert_columns()
        _INSERT[dialect] = executor._prepare_insert_statement(columns, ignore_conflicts=True).get_sql(), fields
    sql, fields = _INSERT[dialect]
    by_name = Job._meta.fields_map
    await db.execute_many(sql, [[by_name[f].to_db_value(getattr(job, f), job) for f in fields] for job in jobs])
