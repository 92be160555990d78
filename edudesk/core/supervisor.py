"""One supervisor for all background work: named tasks that are logged and restarted when they fail."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Supervisor:
    """Runs long-lived coroutines in one task group; a failing one is restarted with backoff."""

    def __init__(self, *, initial_backoff: float = 1.0, max_backoff: float = 60.0) -> None:
        self._services: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.restarts: dict[str, int] = {}

    def add(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        """Register a service: `factory()` returns the coroutine to run (called again on restart)."""
        self._services.append((name, factory))

    async def _keep(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        delay = self.initial_backoff
        while True:
            try:
                await factory()
                log.info("%s finished", name)
                return
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - restart, never let one part take the service down
                self.restarts[name] = self.restarts.get(name, 0) + 1
                log.exception("%s failed; restarting in %.0f s", name, delay)
                await asyncio.sleep(delay)
                delay = min(self.max_backoff, delay * 2)

    async def run(self) -> None:
        """Run every registered service until all finish or the supervisor is cancelled."""
        async with asyncio.TaskGroup() as tg:
            for name, factory in self._services:
                tg.create_task(self._keep(name, factory), name=name)
