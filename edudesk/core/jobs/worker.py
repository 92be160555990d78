"""The job worker: runs claimed jobs with bounded concurrency, one per process."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

from tortoise.exceptions import OperationalError

from edudesk.core.jobs.kinds import (
    _WHEN_DONE,
    LOCKED_RETRY_SECONDS,
    Handler,
    Handlers,
    JobKind,
    PermanentJobError,
    RetryLater,
    database_locked,
)
from edudesk.core.jobs.queue import JobQueue, set_done_writes
from edudesk.core.models import Job

log = logging.getLogger(__name__)
# With a slot free and others running, how long a worker waits for more slots before it claims: claims (a
# transaction each) are then shared by several jobs. A job due meanwhile waits at most this long.
GATHER_SECONDS = 0.02


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
        writes: list[Any] = []
        token = _WHEN_DONE.set(writes)
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
            if writes:
                set_done_writes(job, writes)
            self._done.append(job)
        finally:
            _WHEN_DONE.reset(token)

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
                free = await self._gather(limit, running)
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

    async def _gather(self, limit: int, running: dict[asyncio.Task[None], int]) -> int:
        """The free slots to claim for: when only a few are free while others run, wait up to `GATHER_SECONDS`
        for half of them, so that one claim (one transaction) serves several jobs; returns the free slots."""
        want = max(1, limit // 2)
        if running and 0 < limit - len(running) < want:
            deadline = time.monotonic() + GATHER_SECONDS
            while running and limit - len(running) < want and not self._stopping.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                await self.queue.wait(left)
        return limit - len(running)

    async def _heartbeat(self, running: dict[asyncio.Task[None], int]) -> None:
        """Renew the leases of the jobs in hand every third of a lease."""
        interval = max(0.05, self.queue.settings.lease_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.queue.renew(list(running.values()))
            except Exception:  # noqa: BLE001 - a missed renewal only risks a takeover; try again next time
                log.exception("could not renew job leases")
