"""The durable job queue on a real database (SQLite, and PostgreSQL with -m db): idempotent enqueue,
exactly one claimer, urgent kinds first, retries with backoff, dead jobs audited, deferral without a
counted attempt, a crashed worker's lease taken over, one handler per kind."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from edudesk.core.jobs import JobKind, JobQueue, JobState, JobWorker, PermanentJobError, RetryLater
from edudesk.core.models import AuditEvent, Job

pytestmark = pytest.mark.db


async def _queue(app_factory: Any, clock: Any, settings_factory: Any, **jobs: Any) -> JobQueue:
    settings = settings_factory(jobs={"max_attempts": 3, "backoff_initial_seconds": 10.0,
                                      "backoff_max_seconds": 100.0, "lease_seconds": 60.0, **jobs})
    await app_factory(settings, clock=clock, inline_analysis=True)  # a migrated database
    return JobQueue(clock, settings.jobs)


async def test_a_key_is_enqueued_once(app_factory: Any, clock: Any, settings_factory: Any) -> None:
    queue = await _queue(app_factory, clock, settings_factory)
    for _ in range(3):
        await queue.enqueue(JobKind.SEND_MAIL, "send_mail:1", {"outgoing_id": 1})
    assert await Job.filter(key="send_mail:1").count() == 1
    job = await Job.get(key="send_mail:1")
    assert job.kind == "send_mail" and job.state == JobState.PENDING  # the stored values stay plain strings


async def test_two_claimers_never_get_the_same_job(app_factory: Any, clock: Any, settings_factory: Any) -> None:
    queue = await _queue(app_factory, clock, settings_factory)
    for i in range(40):
        await queue.enqueue(JobKind.SEND_MAIL, f"k{i}")
    other = JobQueue(clock, queue.settings)
    batches = await asyncio.gather(*(q.claim(7) for q in (queue, other, queue, other) for _ in range(3)))
    ids = [job.id for batch in batches for job in batch]
    assert len(ids) == len(set(ids)) == 40
    assert await Job.filter(state=JobState.RUNNING, attempts=1).count() == 40


async def test_mail_waiting_to_become_a_request_goes_first(app_factory: Any, clock: Any,
                                                           settings_factory: Any) -> None:
    queue = await _queue(app_factory, clock, settings_factory)
    for i in range(5):
        await queue.enqueue(JobKind.SEND_MAIL, f"ack{i}")
    await queue.enqueue(JobKind.PROCESS_MAIL, "process_mail:1", {"mail_id": 1})
    await queue.enqueue(JobKind.REFRESH_CARDS, "cards:1:1", {"request_id": 1})
    first = await queue.claim(2)
    assert sorted(j.kind for j in first) == ["process_mail", "refresh_cards"]


async def test_a_failing_job_retries_with_backoff_then_is_parked_and_audited(
        app_factory: Any, clock: Any, settings_factory: Any) -> None:
    queue = await _queue(app_factory, clock, settings_factory)
    calls: list[int] = []

    async def broken(job: Job) -> None:
        calls.append(job.attempts)
        raise ValueError("the directory said no")

    worker = JobWorker(queue, {JobKind.PROVISION: broken})
    await queue.enqueue(JobKind.PROVISION, "provision:7:1", {"request_id": None})
    assert await worker.drain() == 1
    job = await Job.get(key="provision:7:1")
    assert job.state == JobState.PENDING and "ValueError: the directory said no" in job.last_error
    wait = (job.run_after - clock.now()).total_seconds()
    assert 8.0 <= wait <= 12.0  # 10 s, with jitter
    assert await worker.drain() == 0  # not due yet
    clock.advance(timedelta(seconds=13))
    assert await worker.drain() == 1
    job = await Job.get(key="provision:7:1")
    assert 16.0 <= (job.run_after - clock.now()).total_seconds() <= 24.0  # doubled
    clock.advance(timedelta(seconds=25))
    assert await worker.drain() == 1
    job = await Job.get(key="provision:7:1")
    assert job.state == JobState.DEAD and job.finished_at is not None and calls == [1, 2, 3]
    dead = await AuditEvent.get(action="job_dead")
    assert dead.detail["job"] == job.id and dead.detail["kind"] == "provision"


async def test_permanent_failure_and_unknown_kind_park_at_once(app_factory: Any, clock: Any,
                                                               settings_factory: Any) -> None:
    queue = await _queue(app_factory, clock, settings_factory)

    async def refused(job: Job) -> None:
        raise PermanentJobError("bad payload")

    worker = JobWorker(queue, {JobKind.SEND_MAIL: refused})
    await queue.enqueue(JobKind.SEND_MAIL, "a")
    await queue.enqueue(JobKind.SIGN_POLL, "b")  # nobody registered it in this worker
    assert await worker.drain() == 2
    a, b = await Job.get(key="a"), await Job.get(key="b")
    assert (a.state, a.attempts, a.last_error) == (JobState.DEAD, 1, "bad payload")
    assert b.state == JobState.DEAD and "no handler" in b.last_error


async def test_retry_later_waits_without_spending_an_attempt(app_factory: Any, clock: Any,
                                                             settings_factory: Any) -> None:
    queue = await _queue(app_factory, clock, settings_factory)
    runs = 0

    async def busy(job: Job) -> None:
        nonlocal runs
        runs += 1
        if runs < 5:
            raise RetryLater(2.0)

    worker = JobWorker(queue, {JobKind.CHAT_NOTICE: busy})
    await queue.enqueue(JobKind.CHAT_NOTICE, "notice:x")
    for _ in range(4):
        assert await worker.drain() == 1
        job = await Job.get(key="notice:x")
        assert (job.state, job.attempts) == (JobState.PENDING, 0)  # more tries than max_attempts, none counted
        clock.advance(timedelta(seconds=2.5))
    assert await worker.drain() == 1
    assert (await Job.get(key="notice:x")).state == JobState.DONE


async def test_a_dead_workers_job_is_taken_over_and_its_late_outcome_is_ignored(
        app_factory: Any, clock: Any, settings_factory: Any) -> None:
    queue = await _queue(app_factory, clock, settings_factory)
    await queue.enqueue(JobKind.SEND_MAIL, "m")
    [stale] = await queue.claim(1)
    assert await queue.claim(1) == []  # leased
    clock.advance(timedelta(seconds=61))
    [fresh] = await queue.claim(1)  # the first worker died: its lease ran out
    assert fresh.id == stale.id and fresh.attempts == 2
    await queue.fail(stale, "late failure of the first worker")  # must not overwrite the new holder
    assert (await Job.get(id=fresh.id)).state == JobState.RUNNING
    await queue.complete(fresh)
    assert (await Job.get(id=fresh.id)).state == JobState.DONE


async def test_renewed_leases_keep_a_slow_job_with_its_worker(app_factory: Any, clock: Any,
                                                              settings_factory: Any) -> None:
    queue = await _queue(app_factory, clock, settings_factory)
    await queue.enqueue(JobKind.SEND_MAIL, "slow")
    [job] = await queue.claim(1)
    for _ in range(3):
        clock.advance(timedelta(seconds=40))
        await queue.renew([job.id])
        assert await queue.claim(1) == []


def test_a_kind_has_one_handler() -> None:
    async def handler(job: Job) -> None:
        return None

    worker = JobWorker(JobQueue.__new__(JobQueue), {JobKind.SEND_MAIL: handler})
    with pytest.raises(ValueError, match="send_mail"):
        worker.register({JobKind.SEND_MAIL: handler})
    worker.register({JobKind.SIGN_POLL: handler})
    assert set(worker.handlers) == {"send_mail", "sign_poll"}
