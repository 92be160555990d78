"""The start/stop code every fake HTTP service shares: an aiohttp app on a free port of 127.0.0.1.

A fake subclasses `FakeServer`, adds its routes in `routes(app)` and, if it runs background work, starts it
in `started()` and ends it in `stopping()`. Then `await fake.start()` / `await fake.stop()`, or
`async with Fake(...) as fake:`. Port 0: the kernel picks a free port, so two test runs can share a host.
"""

from __future__ import annotations

from typing import Any, Self

from aiohttp import web


class FakeServer:
    """Lifecycle of one fake: listen on 127.0.0.1 (any free port), `url`, stop; `async with` works too."""

    # What AppRunner is given; a fake whose handlers hold requests open may ask for handler cancellation.
    shutdown_timeout: float = 1.0
    handler_cancellation: bool = False
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:PORT (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    def routes(self, app: web.Application) -> None:
        """Add the fake's routes."""
        raise NotImplementedError

    async def started(self) -> None:
        """Called once the server listens (start background work here)."""

    async def stopping(self) -> None:
        """Called before the server closes (end background work, answer held requests)."""

    async def start(self) -> Self:
        """Listen on a free port of 127.0.0.1."""
        app = web.Application()
        self.routes(app)
        options: dict[str, Any] = {"access_log": None, "shutdown_timeout": self.shutdown_timeout}
        if self.handler_cancellation:
            options["handler_cancellation"] = True
        runner = web.AppRunner(app, **options)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        await self.started()
        return self

    async def stop(self) -> None:
        """Close the server (a stopped fake keeps its state, for inspection)."""
        await self.stopping()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
