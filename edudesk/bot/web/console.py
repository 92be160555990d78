"""The web console (aiohttp + jinja2): the same cards and buttons as the chats, queues, audit trail, registry.

Routes live in bot/web/session.py (sign-in, the guard), queue.py, request.py and live.py;
templates in templates/web/. Sign-in is by one-time link only (core/people/webauth.py).
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest

from edudesk.bot.web import (
    accounts,
    actions,
    live,
    password,
    queue,
    session,
)
from edudesk.bot.web import confirm as confirm_pages
from edudesk.bot.web import ops as ops_pages
from edudesk.bot.web import records as records_pages
from edudesk.bot.web import reports as report_pages
from edudesk.bot.web import request as request_pages
from edudesk.bot.web.render import CONSOLE, STATIC, Console, console, make_env, render, security_headers
from edudesk.bot.web.serving import Served
from edudesk.core.config import Settings
from edudesk.core.ports import Clock
from edudesk.core.requests.service import RequestService
from edudesk.core.signing.service import RecordService

log = logging.getLogger(__name__)
QUIET = ("/api/version", "/static/", "/healthz", "/readyz", "/metrics")  # polled: logged only when failing


class RedactingAccessLogger(AbstractAccessLogger):
    """Access log without query strings or sign-in tokens, and without the pages' polling."""

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        """One line per request: method, path (tokens cut), status, duration."""
        path = request.path
        if path.startswith(("/login/", "/p/", "/a/", "/confirm/")):
            path = path[:path.index("/", 1) + 1] + "…"  # the token is a credential until used
        elif path.startswith(QUIET) and response.status < 400:
            return
        self.logger.info("%s %s %s %s %.3fs", request.remote, request.method, path, response.status, time)

    @property
    def enabled(self) -> bool:
        """Log only when the logger would emit INFO."""
        return self.logger.isEnabledFor(logging.INFO)


@web.middleware
async def not_found(request: web.Request, handler: session.Handler) -> web.StreamResponse:
    """Unknown pages as a page in the console's language (after the guard: signed-out users go to /login)."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        if request.path.startswith(("/api/", "/static/")):
            raise
        c = console(request)
        return render(request, "error.html.j2", status=404, title=c.t["error_title"], message=c.t["not_found"])


def build_app(settings: Settings, clock: Clock, services: RequestService,
              records: RecordService | None = None) -> web.Application:
    """The aiohttp application with every route, the guard and the security headers."""
    app = web.Application(middlewares=[session.guard, not_found], client_max_size=256 * 1024)
    app[CONSOLE] = Console(settings, clock, services, make_env(), records)
    session.add_routes(app)
    queue.add_routes(app)
    request_pages.add_routes(app)
    live.add_routes(app)
    password.add_routes(app)
    accounts.add_routes(app)
    records_pages.add_routes(app)
    report_pages.add_routes(app)  # /reports: heads and admins
    actions.add_routes(app)
    confirm_pages.add_routes(app)
    ops_pages.add_routes(app, settings, clock)  # /healthz, /readyz, /metrics: no sign-in, no personal data
    app.middlewares.append(session.access)  # innermost: after the guard and the records' nav badge
    app.router.add_static("/static/", STATIC, append_version=False)
    app.on_response_prepare.append(security_headers)
    return app


class WebConsole(Served):
    """The console on [web].host:port (port 0 picks a free one; `port` tells which after start)."""

    what = "web console"

    def __init__(self, settings: Settings, clock: Clock, services: RequestService,
                 records: RecordService | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.services = services
        super().__init__(build_app(settings, clock, services, records), settings.web.host, settings.web.port,
                         access_log_class=RedactingAccessLogger)

    @property
    def base_url(self) -> str:
        """Where the console is reached: [web].public_url, else the address it listens on (real port)."""
        return (self.settings.web.public_url or f"http://{self.host}:{self.port}").rstrip("/")
