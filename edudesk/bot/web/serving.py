"""One aiohttp application served on a host and port under the supervisor (the console, the ops pages)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)


class Served:
    """`app` on `host:port` (port 0 picks a free one; `port` tells which after `start`)."""

    what = "web"  # named in the log line once listening

    def __init__(self, app: web.Application, host: str, port: int, **runner: Any) -> None:
        self.app = app
        self.host, self.port = host, port
        self._runner_options = {"shutdown_timeout": 2.0, **runner}
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        """The address it listens on (the real port once started)."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Bind and serve."""
        # A short shutdown: open pages long-poll, which must not hold a stop for a minute.
        self._runner = web.AppRunner(self.app, **self._runner_options)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None)
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        log.info("%s on %s", self.what, self.base_url)

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def run(self) -> None:
        """For the supervisor: serve until cancelled (started already by `start`, or here)."""
        if self._runner is None:
            await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()
