"""Tortoise queries built once per database dialect and shape, then sent again with new values.

Building a query with tortoise (pypika copies the builder at every step) costs 0.4-0.7 ms here, more than
SQLite takes to run it. A statement on every hot path (the job queue's claim) is built once with stand-in
values, by the same tortoise calls as before, and later calls send that SQL with their own values in the
stand-ins' places. Tortoise checks an update's values (a column's length) only while building, so the values
sent later in an update are the code's own (states, ids, times), not a user's text.
`tests/integration/test_prepared.py` checks the SQL and values against a fresh build on both databases.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

_EPOCH = datetime(1901, 2, 3, 4, 5, 6, tzinfo=UTC)
_INT_BASE = -7_310_000_000_000


def stand_in(value: Any, index: int) -> Any:
    """A value of the same type as `value` that no real query holds, unique to `index`."""
    if isinstance(value, datetime):
        return _EPOCH + timedelta(microseconds=index + 1)
    if isinstance(value, str):
        return f"\x1f{index}\x1f"  # short: an update's value must pass the column's length check while building
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"no stand-in for {type(value).__name__}: only datetimes, ints and strings")
    return _INT_BASE - index


class Prepared:
    """One query shape: `build(conn, shape, *values)` returns the tortoise query (a QuerySet or an update)
    for `values`, a flat sequence of datetimes, ints, strings and Nones, and `shape`, anything else that
    decides the SQL (a limit). The SQL is built once per dialect, shape, number of values and Nones among them."""

    def __init__(self, build: Callable[..., Any]) -> None:
        self.build = build
        self._cache: dict[tuple[str, Any, tuple[bool, ...]], tuple[str, list[tuple[bool, Any]]]] = {}

    def _make(self, conn: BaseDBAsyncClient, shape: Any, values: Sequence[Any]) -> tuple[str, list[tuple[bool, Any]]]:
        # A None is built in as it is (IS NULL, or a NULL parameter): where a value is None is part of the key.
        markers = [None if v is None else stand_in(v, i) for i, v in enumerate(values)]
        where = {m: i for i, m in enumerate(markers) if m is not None}
        query = self.build(conn, shape, *markers)
        query._make_query()
        sql, params = query.query.get_parameterized_sql()
        slots = [(True, where[p]) if _same(p, markers, where) else (False, p) for p in params]
        used = {i for is_slot, i in slots if is_slot}
        if used != set(where.values()):
            # A value tortoise converted while building (another time zone, a naive datetime) is not found
            # again: sending later values unconverted would be wrong, so the shape is refused instead.
            raise ValueError(f"the query does not pass every value on as given: {sorted(used)} of {len(markers)}")
        return sql, slots

    def statement(self, conn: BaseDBAsyncClient, values: Sequence[Any], shape: Any = None) -> tuple[str, list[Any]]:
        """The SQL and its parameters for these values."""
        for value in values:
            if isinstance(value, datetime) and value.tzinfo is None:
                raise TypeError("a naive datetime: tortoise would make it aware while building")
        key = (conn.capabilities.dialect, shape, tuple(v is None for v in values))
        made = self._cache.get(key)
        if made is None:
            made = self._cache[key] = self._make(conn, shape, values)
        sql, slots = made
        return sql, [values[p] if is_slot else p for is_slot, p in slots]

    async def rows(self, conn: BaseDBAsyncClient, values: Sequence[Any], shape: Any = None) -> list[dict[str, Any]]:
        """Run a select; the rows as dicts."""
        return [dict(row) for row in (await conn.execute_query(*self.statement(conn, values, shape)))[1]]

    async def value(self, conn: BaseDBAsyncClient, values: Sequence[Any], shape: Any = None) -> Any:
        """Run a select of one value (a count); that value, or None without a row."""
        rows = (await conn.execute_query(*self.statement(conn, values, shape)))[1]
        return next(iter(dict(rows[0]).values())) if rows else None

    async def count(self, conn: BaseDBAsyncClient, values: Sequence[Any], shape: Any = None) -> int:
        """Run an update or delete; how many rows it changed."""
        return int((await conn.execute_query(*self.statement(conn, values, shape)))[0])


def _same(param: Any, markers: list[Any], where: dict[Any, int]) -> bool:
    # The very value given: same type, and for a datetime the same zone (an equal instant elsewhere is not).
    try:
        index = where.get(param)
    except TypeError:  # unhashable: a list or dict parameter
        return False
    if index is None:
        return False
    marker = markers[index]
    return type(param) is type(marker) and (not isinstance(param, datetime) or param.tzinfo == marker.tzinfo)
