"""The web console (aiohttp + jinja2): the same cards and buttons as the chats, queues, audit trail, registry."""

from __future__ import annotations

import asyncio

from aiohttp import web

from core.config import Settings
from core.ports import Clock
from core.services import RequestService


class WebConsole:
    """The console on [web].host:port (port 0 picks a free one; `port` tells which after start)."""

    def __init__(self, settings: Settings, clock: Clock, services: RequestService) -> None:
        self.settings = settings
        self.clock = clock
        self.services = services
        self.port = settings.web.port
        self.app = web.Application()
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Bind and serve."""
        self._runner = web.AppRunner(self.app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.web.host, self.settings.web.port)
        await site.start()
        server = site._server
        if server is not None and getattr(server, "sockets", None):
            self.port = server.sockets[0].getsockname()[1]

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
