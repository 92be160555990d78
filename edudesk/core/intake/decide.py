"""Decisions in groups: the mails that reach the decision while another group is being decided are decided
together, one after the other, in one transaction.

A decision (flood count, checks against the registry, free addresses, open duplicates, the new request with
its people, audit entry, cards and acknowledgement) is one step at a time, and each used to end with its own
commit: one fsync per mail on SQLite and on PostgreSQL, with the decision lock held across it, so every other
mail waited for the disk. Now the mails waiting when a decision starts share its transaction and its commit.

Nothing is weakened: the mails of a group are decided in order, each seeing what the ones before it wrote (the
same transaction), so no address is offered twice and no duplicate goes unseen; each mail's writes run in a
savepoint of their own, so a mail that fails leaves the others' decisions intact; and a job learns its
outcome only after the group committed (a crash before that re-runs the jobs; nothing was stored).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from tortoise.transactions import in_transaction

from edudesk.core.db import dialect, lock_for_transaction

Decide = Callable[[], Awaitable[str | None]]  # one mail's decision: its filters, run in the group's transaction


@dataclass
class _Waiting:
    decide: Decide
    done: bool = False
    outcome: str | None = None
    error: BaseException | None = None


class DecisionGroups:
    """One decision at a time in this process (and, through `lock`, across PostgreSQL replicas), several mails
    per decision when several wait."""

    def __init__(self, lock: asyncio.Lock, advisory_lock: str, max_group: int = 50) -> None:
        self.lock = lock  # shared with the other users of the decision (a reply attached to its request)
        self.advisory_lock = advisory_lock
        self.max_group = max_group
        self._waiting: list[_Waiting] = []
        self.groups = 0  # decisions committed, and the mails they decided (for tests and the bench)
        self.decided = 0

    async def decide(self, decide: Decide) -> str | None:
        """Run `decide` inside a decision, together with the others waiting; its outcome once committed."""
        entry = _Waiting(decide)
        self._waiting.append(entry)
        try:
            while not entry.done:
                async with self.lock:
                    if entry.done:
                        break
                    group, self._waiting = self._waiting[:self.max_group], self._waiting[self.max_group:]
                    await self._run(group)
        except asyncio.CancelledError:
            if entry in self._waiting:  # not taken by a group yet: its job is stopping, so is its decision
                self._waiting.remove(entry)
            raise
        if entry.error is not None:
            raise entry.error
        return entry.outcome

    async def _run(self, group: Sequence[_Waiting]) -> None:
        try:
            async with in_transaction() as conn:
                if dialect() == "postgres":
                    await lock_for_transaction(conn, self.advisory_lock)
                outcomes: list[tuple[str | None, BaseException | None]] = []
                for entry in group:
                    try:
                        async with in_transaction():  # a savepoint: a mail that fails takes back only its writes
                            outcome = await entry.decide()
                    except Exception as exc:  # noqa: BLE001 - its own job fails and retries; the others go on
                        outcomes.append((None, exc))
                    else:
                        outcomes.append((outcome, None))
        except BaseException as exc:
            # Nothing of the group is stored (or nothing is known to be): every job in it fails and runs again.
            failure = exc if isinstance(exc, Exception) else RuntimeError("the decision was interrupted")
            for entry in group:
                entry.error, entry.done = failure, True
            raise
        self.groups += 1
        self.decided += len(group)
        for entry, (outcome, error) in zip(group, outcomes, strict=True):
            entry.outcome, entry.error, entry.done = outcome, error, True
