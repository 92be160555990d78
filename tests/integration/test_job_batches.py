"""Jobs claimed and completed in batches (SQLite, and PostgreSQL with -m db): one lease statement for a batch
never hands a job to two workers, finished jobs are marked done with the next claim, and a crash before that
re-runs only the jobs that had not finished."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from edudesk.core.jobs import JobKind, JobQueue, JobState, JobWorker, PermanentJobError, write_when_done
from edudesk.core.models import AuditEvent, Job
from tests.conftest import wait_until

pytestmark = pytest.mark.db


async def _queue(app_factory: Any, clock: Any, settings_factory: Any, **jobs: Any) -> JobQueue:
    settings = settings_factory(jobs={"max_attempts": 3, "lease_seconds": 60.0, **jobs})
    await app_factory(settings, clock=clock, inline_analysis=True)  # a migrated database
    return JobQueue(clock, settings.jobs)


async def test_batches_claimed_at_once_by_many_workers_share_no_job(app_factory: Any, clock: Any,
                                                                     settings_factory: Any) -> None:
    queue = await _queue(app_factory, clock, settings_factory)
    for i in range(100):
        await queue.enqueue(JobKind.SEND_MAIL if i % 3 else JobKind.PROCESS_MAIL, f"k{i}")
    workers = [JobQueue(clock, queue.settings) for _ in range(5)]
    batches = await asyncio.gather(*(w.claim(9) for w in workers for _ in range(3)))
    ids = [job.id for batch in batches for job in batch]
    assert len(ids) == len(set(ids)) == 100
    assert all(job.state == JobState.RUNNING and job.attempts == 1 for batch in batches for job in batch)
    assert await Job.filter(state=JobState.RUNNING, attempts=1).count() == 100


async def test_finished_jobs_are_marked_done_by_the_next_claim(app_factory: Any, clock: Any,
                                                               settings_factory: Any) -> None:
    queue = await _queue(app_factory, clock, settings_factory)
    for i in range(6):
        await queue.enqueue(JobKind.SEND_MAIL, f"m{i}")
    first = await queue.claim(4)
    second = await queue.claim(4, done=first[:3])
    assert len(second) == 2
    states = dict(await Job.all().values_list("key", "state"))
    assert [states[f"m{i}"] for i in range(6)] == ["done"] * 3 + ["running"] * 3
    assert await queue.claim(0, done=[first[3], *second]) == []
    assert await Job.filter(state=JobState.DONE).count() == 6
    assert await Job.filter(finished_at__isnull=True).count() == 0


async def test_a_crash_before_the_batch_is_marked_done_reruns_only_the_unfinished_jobs(
        app_factory: Any, clock: Any, settings_factory: Any) -> None:
    queue = await _queue(app_factory, clock, settings_factory)
    for i in range(5):
        await queue.enqueue(JobKind.SEND_MAIL, f"c{i}")
    batch = await queue.claim(5)
    await queue.claim(0, done=batch[:2])  # two finished and recorded, then the process is killed
    clock.advance(timedelta(seconds=61))  # the dead worker's lease runs out
    after = await JobQueue(clock, queue.settings).claim(10)
    assert sorted(j.key for j in after) == ["c2", "c3", "c4"]
    assert all(j.attempts == 2 for j in after)


async def test_a_late_batch_completion_does_not_overwrite_the_worker_that_took_over(
        app_factory: Any, clock: Any, settings_factory: Any) -> None:
    queue = await _queue(app_factory, clock, settings_factory)
    await queue.enqueue(JobKind.SEND_MAIL, "slow")
    await queue.enqueue(JobKind.SEND_MAIL, "quick")
    stale = await queue.claim(2)
    clock.advance(timedelta(seconds=61))
    fresh = await JobQueue(clock, queue.settings).claim(1)  # takes over "slow" with a second attempt
    assert [j.key for j in fresh] == ["slow"] and fresh[0].attempts == 2
    await queue.complete_many(stale)  # the first worker wakes up and reports both
    states = dict(await Job.all().values_list("key", "state"))
    assert states == {"slow": "running", "quick": "done"}


async def test_the_worker_marks_each_handled_job_done_once_and_runs_each_once(
        app_factory: Any, clock: Any, settings_factory: Any) -> None:
    queue = await _queue(app_factory, clock, settings_factory, concurrency=4)
    ran: list[str] = []

    async def handler(job: Job) -> None:
        ran.append(job.key)

    worker = JobWorker(queue, {JobKind.SEND_MAIL: handler})
    for i in range(11):
        await queue.enqueue(JobKind.SEND_MAIL, f"w{i}")
    assert await worker.drain() == 11
    assert sorted(ran) == sorted(f"w{i}" for i in range(11))
    assert await Job.filter(state=JobState.DONE).count() == 11
    async with asyncio.TaskGroup() as tg:
        tg.create_task(worker.run())
        for i in range(11, 20):
            await queue.enqueue(JobKind.SEND_MAIL, f"w{i}")
        await wait_until(lambda: _done_is(20))
        worker.stop()
    assert await Job.filter(state=JobState.DONE).count() == 20 and len(ran) == 20


async def test_the_writes_a_handler_leaves_are_made_with_its_completion_one_call_a_batch_or_not_at_all(
        app_factory: Any, clock: Any, settings_factory: Any) -> None:
    queue = await _queue(app_factory, clock, settings_factory, concurrency=4)
    calls: list[list[str]] = []
    disk_full = [True]

    async def writer(conn: Any, items: list[str]) -> None:
        calls.append(sorted(items))
        await AuditEvent.bulk_create([AuditEvent(at=clock.now(), actor="system", action="left_write",
                                                 detail={"key": key}) for key in items], using_db=conn)
        if disk_full.pop() if disk_full else False:
            raise OSError("No space left on device")

    async def handler(job: Job) -> None:
        assert write_when_done(writer, job.key)
        if job.key == "refused":
            raise PermanentJobError("refused")  # what it left goes with it

    assert not write_when_done(writer, "outside")  # no worker runs this: the caller writes at once
    worker = JobWorker(queue, {JobKind.SEND_MAIL: handler})
    for key in ("a", "b", "refused", "c"):
        await queue.enqueue(JobKind.SEND_MAIL, key)
    for job in await queue.claim(4):
        await worker.run_one(job)
    with pytest.raises(OSError):
        await worker.flush()  # the write failed: the jobs are not done either, and nothing was written
    assert await Job.filter(state=JobState.DONE).count() == 0
    assert not await AuditEvent.filter(action="left_write").exists()
    await worker.flush()  # the next try
    assert calls == [["a", "b", "c"], ["a", "b", "c"]]
    assert sorted(await Job.filter(state=JobState.DONE).values_list("key", flat=True)) == ["a", "b", "c"]
    assert await Job.filter(key="refused", state=JobState.DEAD).exists()
    events = await AuditEvent.filter(action="left_write").values_list("detail", flat=True)
    assert sorted(e["key"] for e in events) == ["a", "b", "c"]  # type: ignore[index]


async def _done_is(n: int) -> bool:
    return await Job.filter(state=JobState.DONE).count() == n


async def test_an_acknowledgement_waiting_two_seconds_goes_before_newer_mail(app_factory: Any, clock: Any,
                                                                            settings_factory: Any) -> None:
    queue = await _queue(app_factory, clock, settings_factory)
    await queue.enqueue(JobKind.SEND_MAIL, "ack-old")
    clock.advance(timedelta(seconds=1))
    await queue.enqueue(JobKind.SEND_MAIL, "ack-young")
    for i in range(3):
        await queue.enqueue(JobKind.PROCESS_MAIL, f"process_mail:{i}", {"mail_id": i})
    assert [j.key for j in await JobQueue(clock, queue.settings).claim(1)] == ["process_mail:0"]
    clock.advance(timedelta(seconds=1.5))  # the first acknowledgement has waited 2.5 s, the second 1.5 s
    assert [j.key for j in await queue.claim(2)] == ["ack-old", "process_mail:1"]


async def test_a_worker_with_one_slot_free_waits_briefly_for_a_second_so_one_claim_serves_both(
        app_factory: Any, clock: Any, settings_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from edudesk.core.jobs import worker as worker_module

    queue = await _queue(app_factory, clock, settings_factory, concurrency=4)
    worker = JobWorker(queue, {})
    running: dict[asyncio.Task[None], int] = {}
    busy = asyncio.Event()
    tasks = [asyncio.get_running_loop().create_task(busy.wait()) for _ in range(3)]
    running.update({task: i for i, task in enumerate(tasks)})

    def one_finishes() -> None:
        running.pop(tasks[0])
        queue.wake()

    monkeypatch.setattr(worker_module, "GATHER_SECONDS", 30.0)  # only the second free slot ends the wait
    asyncio.get_running_loop().call_later(0.01, one_finishes)
    assert await worker._gather(4, running) == 2
    monkeypatch.setattr(worker_module, "GATHER_SECONDS", 0.05)  # no second slot comes: it claims for one
    started = asyncio.get_running_loop().time()
    running[tasks[0]] = 0
    assert await worker._gather(4, running) == 1
    assert asyncio.get_running_loop().time() - started >= 0.05
    busy.set()
    await asyncio.gather(*tasks)


async def test_a_job_due_while_long_jobs_fill_the_other_slots_still_runs_at_once(
        app_factory: Any, clock: Any, settings_factory: Any) -> None:
    queue = await _queue(app_factory, clock, settings_factory, concurrency=4, poll_interval_seconds=60.0)
    release = asyncio.Event()
    ran: list[str] = []

    async def handler(job: Job) -> None:
        if job.key.startswith("long"):
            await release.wait()
        ran.append(job.key)

    worker = JobWorker(queue, {JobKind.SEND_MAIL: handler})
    for i in range(3):
        await queue.enqueue(JobKind.SEND_MAIL, f"long{i}")
    async with asyncio.TaskGroup() as tg:
        tg.create_task(worker.run())
        await wait_until(lambda: _running_is(3))
        await queue.enqueue(JobKind.SEND_MAIL, "quick")  # one slot free, three taken until `release`
        await wait_until(lambda: _ran(ran, "quick"))
        assert not release.is_set() and ran == ["quick"]
        release.set()
        await wait_until(lambda: _done_is(4))
        worker.stop()


async def _running_is(n: int) -> bool:
    return await Job.filter(state=JobState.RUNNING).count() == n


async def _ran(ran: list[str], key: str) -> bool:
    return key in ran


async def test_enqueued_jobs_are_stored_as_bulk_create_stores_them_and_a_known_key_is_left_alone(
        app_factory: Any, clock: Any, settings_factory: Any) -> None:
    queue = await _queue(app_factory, clock, settings_factory)
    payload = {"mail_id": 7, "text": "Nguyễn Văn Ánh", "list": [1, None]}
    await queue.enqueue(JobKind.PROCESS_MAIL, "same", payload)
    await Job.bulk_create([Job(kind=JobKind.PROCESS_MAIL, key="orm", payload=payload, run_after=clock.now(),
                               created_at=clock.now())], ignore_conflicts=True)
    await queue.enqueue(JobKind.SEND_MAIL, "same", {"other": True})  # the key exists: nothing changes
    await queue.enqueue_many([(JobKind.SEND_MAIL, "orm", {}), (JobKind.SEND_MAIL, "new", {})])
    columns = ("kind", "payload", "state", "attempts", "run_after", "locked_until", "last_error", "created_at",
               "finished_at")
    rows = {row["key"]: row for row in await Job.all().values("key", *columns)}
    assert sorted(rows) == ["new", "orm", "same"]
    assert {c: rows["same"][c] for c in columns} == {c: rows["orm"][c] for c in columns}
    assert rows["same"]["payload"] == payload and rows["new"]["kind"] == JobKind.SEND_MAIL
    claimed = await queue.claim(5)
    assert {job.key for job in claimed} == {"same", "orm", "new"}


async def test_jobs_gathered_in_a_transaction_are_written_together_at_its_end_or_not_at_all(
        app_factory: Any, clock: Any, settings_factory: Any) -> None:
    from tortoise.transactions import in_transaction

    queue = await _queue(app_factory, clock, settings_factory)
    async with in_transaction() as conn:
        async with queue.gathered(conn):
            await queue.enqueue(JobKind.REFRESH_CARDS, "g:card", {"n": 1}, connection=conn)
            await queue.enqueue(JobKind.SEND_MAIL, "g:mail", {"n": 2}, connection=conn)
            await queue.enqueue(JobKind.SEND_MAIL, "g:mail", {"n": 3}, connection=conn)  # the key exists: ignored
            assert not await Job.filter(key__startswith="g:").using_db(conn).exists()  # not yet written
        rows = await Job.filter(key__startswith="g:").using_db(conn).order_by("id").values_list("key", "payload")
        assert rows == [("g:card", {"n": 1}), ("g:mail", {"n": 2})]
    with pytest.raises(RuntimeError):
        async with in_transaction() as conn, queue.gathered(conn):
            await queue.enqueue(JobKind.SEND_MAIL, "g:lost", connection=conn)
            raise RuntimeError("the unit of work fails")
    assert not await Job.filter(key="g:lost").exists()
    async with in_transaction() as conn, queue.gathered(conn):
        await queue.enqueue(JobKind.SEND_MAIL, "g:elsewhere")  # another connection: written at once
        assert await Job.filter(key="g:elsewhere").exists()
    assert await Job.filter(key__startswith="g:").count() == 3
