"""Statements built once (`core/prepared.py`) send what tortoise would build for the same values, on SQLite
and PostgreSQL, and a shape whose values tortoise converts is refused rather than sent wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tortoise import connections
from tortoise.transactions import in_transaction

from edudesk.core.intake import flood, ledger, pipeline
from edudesk.core.jobs.queue import _COMPLETE, _DUE, _LEASE
from edudesk.core.models import Job
from edudesk.core.prepared import Prepared, stand_in
from edudesk.core.requests import mailqueue
from edudesk.mailer.delivery import _MAIL, _SENT, _SENT_STAMPED, _SLOTS_USED, _TAKE_SLOT

pytestmark = pytest.mark.db


def _fresh(prepared: Prepared, conn: Any, shape: Any, values: tuple[Any, ...]) -> tuple[str, list[Any]]:
    query = prepared.build(conn, shape, *values)
    query._make_query()
    sql, params = query.query.get_parameterized_sql()
    return sql, list(params)


async def test_the_claim_statements_are_the_ones_tortoise_builds(app_factory: Any) -> None:
    await app_factory()  # a migrated database, SQLite or PostgreSQL
    conn = connections.get("default")
    now = datetime(2026, 12, 7, 8, 30, 15, 123456, tzinfo=UTC)
    for step in range(3):  # the first call builds, the later ones reuse: each must match a fresh build
        at = now + timedelta(minutes=step)
        for limit in (1, 4, 8):
            values = (at, at - timedelta(seconds=5))
            assert _DUE.statement(conn, values, shape=limit) == _fresh(_DUE, conn, limit, values)
        for ids in ([7], [3, 9, 12], list(range(100 + step, 116 + step))):
            lease = (at, at + timedelta(seconds=60), *ids)
            assert _LEASE.statement(conn, lease) == _fresh(_LEASE, conn, None, lease)
            done = (at, step + 1, *ids)
            assert _COMPLETE.statement(conn, done) == _fresh(_COMPLETE, conn, None, done)


def _one_shape_each(step: int, at: datetime) -> list[tuple[Prepared, tuple[Any, ...]]]:
    """The acknowledgement's, intake's and the ledger's statements, with values that differ by `step`."""
    return [(_MAIL, (41 + step,)), (_SLOTS_USED, (f"phong{step}@truong.edu.vn", at)), (_TAKE_SLOT, (41 + step, at)),
            (_SENT, (41 + step, at)), (_SENT_STAMPED, (41 + step,)), (_SENT_STAMPED, (3, 41 + step, 90)),
            (pipeline._MAIL, (7 + step,)), (flood._RECENT, (f"a{step}@gmail.com", at)),
            (mailqueue._KNOWN, (f"ack:{step}",)), (pipeline._FINISH, (7 + step, "done", "request", 12 + step)),
            (pipeline._FINISH, (7 + step, "quarantined", "unreadable", None)), (ledger._BACKLOG, (at,)),
            (ledger._BY_KEYS, (f"mid:{step}@x", f"k{step}")),
            (ledger._BY_KEYS, (f"mid:{step}@x sha256:ab", f"mid:{step}@x", "mid:y"))]


async def test_the_other_hot_statements_are_the_ones_tortoise_builds(app_factory: Any) -> None:
    await app_factory()
    conn = connections.get("default")
    now = datetime(2026, 12, 7, 8, 30, 15, 123456, tzinfo=UTC)
    for step in range(2):
        for prepared, values in _one_shape_each(step, now + timedelta(minutes=step)):
            assert prepared.statement(conn, values) == _fresh(prepared, conn, None, values)


async def test_the_claim_statements_run_and_find_their_rows(app_factory: Any) -> None:
    await app_factory()
    now = datetime.now(UTC)
    jobs = [await Job.create(kind=kind, key=f"k{i}", payload={}, run_after=now - timedelta(seconds=i),
                             created_at=now) for i, kind in enumerate(["send_mail", "process_mail", "send_mail"])]
    async with in_transaction() as conn:
        rows = await _DUE.rows(conn, (now, now - timedelta(seconds=5)), shape=10)
        assert [row["id"] for row in rows] == [jobs[1].id, jobs[0].id, jobs[2].id]  # the urgent kind first
        assert await _LEASE.count(conn, (now, now + timedelta(seconds=60), jobs[0].id, jobs[1].id)) == 2
        assert await _LEASE.count(conn, (now, now + timedelta(seconds=60), jobs[0].id)) == 0  # leased already
        assert await _COMPLETE.count(conn, (now, 1, jobs[0].id, jobs[1].id)) == 2
    assert sorted(await Job.filter(state="done").values_list("id", flat=True)) == sorted([jobs[0].id, jobs[1].id])


async def test_a_value_tortoise_changes_while_building_is_refused(app_factory: Any) -> None:
    await app_factory()
    conn = connections.get("default")
    # A naive datetime made from the one given: later values would be sent without that conversion.
    converted = Prepared(lambda c, _s, at: Job.filter(run_after__lte=at.replace(tzinfo=None)).using_db(c))
    with pytest.raises(ValueError, match="every value"):
        converted.statement(conn, (datetime.now(UTC),))
    unused = Prepared(lambda c, _s, at, _other: Job.filter(run_after__lte=at).using_db(c))
    with pytest.raises(ValueError, match="every value"):
        unused.statement(conn, (datetime.now(UTC), 5))
    with pytest.raises(TypeError):
        stand_in(b"bytes", 0)
    plain = Prepared(lambda c, _s, at: Job.filter(run_after__lte=at).using_db(c))
    with pytest.raises(TypeError, match="naive"):  # tortoise would have made it aware; no silent difference
        plain.statement(conn, (datetime(2026, 12, 7, 8, 0),))


async def test_within_a_transaction_no_savepoint_is_opened_and_an_error_still_takes_everything_back(
        app_factory: Any) -> None:
    from edudesk.core.db import within_transaction

    await app_factory()
    now = datetime.now(UTC)
    async with within_transaction() as own:  # outside a transaction: a transaction of its own, committed
        await Job.create(kind="x", key="within:own", payload={}, run_after=now, created_at=now, using_db=own)
    assert await Job.filter(key="within:own").exists()
    with pytest.raises(RuntimeError):
        async with in_transaction() as outer:
            async with in_transaction() as nested:
                assert nested is not outer  # what within_transaction saves: a savepoint of its own
            async with within_transaction() as inner:
                assert inner is outer
                await Job.create(kind="x", key="within:inner", payload={}, run_after=now, created_at=now,
                                 using_db=inner)
                raise RuntimeError("the caller's unit of work fails")
    assert not await Job.filter(key="within:inner").exists()
