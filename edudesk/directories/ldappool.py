"""The LDAP back end's connection pool: `size` bound ldap3 connections, each used by one worker thread at a
time, reopened after it broke."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ldap3 import Connection
from ldap3.core.exceptions import LDAPCommunicationError, LDAPResponseTimeoutError, LDAPStartTLSError

T = TypeVar("T")
_BROKEN = (LDAPCommunicationError, LDAPResponseTimeoutError, LDAPStartTLSError, OSError)


class Unreachable(Exception):
    """The server could not be reached or asked to come back later (the adapter retries)."""


@dataclass
class _Slot:
    """One place in the pool; `conn` is None until opened and again after it broke."""

    conn: Connection | None = None


class Pool:
    """`size` bound connections; ldap3's SYNC connection is not shared between threads, so each slot
    goes to one worker thread at a time and comes back to the queue only when that thread is done."""

    def __init__(self, open_connection: Callable[[], Connection], size: int) -> None:
        self._open = open_connection
        self._size = size
        self._slots: asyncio.Queue[_Slot] = asyncio.Queue()
        for _ in range(size):
            self._slots.put_nowait(_Slot())

    async def run(self, work: Callable[[Connection], T]) -> T:
        """Run `work` with a bound connection in a thread; Unreachable when the connection broke."""
        slot = await self._slots.get()
        # run_in_executor (what asyncio.to_thread wraps) gives a plain future, not a task of its own.
        future = asyncio.get_running_loop().run_in_executor(None, self._use, slot, work)
        # Back to the queue when the thread ends, not when the caller gives up: a cancelled job must not
        # hand a connection that a thread still uses to the next caller.
        future.add_done_callback(lambda done: self._give_back(slot, done))
        return await asyncio.shield(future)

    def _give_back(self, slot: _Slot, done: asyncio.Future[Any]) -> None:
        self._slots.put_nowait(slot)
        if not done.cancelled():
            done.exception()  # retrieved: a caller that gave up must not leave "never retrieved" noise

    def _use(self, slot: _Slot, work: Callable[[Connection], T]) -> T:
        try:
            if slot.conn is None or slot.conn.closed:
                slot.conn = self._open()
            return work(slot.conn)
        except _BROKEN as exc:
            conn, slot.conn = slot.conn, None
            if conn is not None:
                try:
                    conn.unbind()
                except Exception:  # noqa: BLE001 - it is already broken
                    pass
            raise Unreachable(str(exc) or type(exc).__name__) from None

    async def close(self) -> None:
        """Wait for every slot (operations in flight finish), then unbind."""
        for _ in range(self._size):
            slot = await self._slots.get()
            if slot.conn is not None:
                await asyncio.to_thread(slot.conn.unbind)
                slot.conn = None
