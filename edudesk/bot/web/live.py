"""Live pages: a change stamp per page (the queue, one request) and a long-poll endpoint the pages call.

A page carries the stamp it was rendered from; templates/web/static/live.js asks `/api/version` to answer
when the stamp moves (or after `wait` seconds) and reloads. Many open tabs share one query per scope per
`TTL`, and the database is the source, so it works the same behind several replicas.
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict

from aiohttp import web
from tortoise.functions import Count, Max

from edudesk.bot.web.render import needs
from edudesk.core.models import AuditEvent
from edudesk.core.people.access import Permission
from edudesk.core.requests.models import Request

TTL = 0.2  # seconds a computed stamp is shared between waiting clients
STEP = 0.25  # seconds between checks while a client waits
MAX_WAIT = 20.0
SCOPE = re.compile(r"queue|request:\d{1,18}")


class Stamps:
    """Change stamps per scope, cached for `TTL` seconds."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[float, str]] = {}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def get(self, scope: str, *, fresh: bool = False) -> str:
        """The current stamp of "queue" or "request:<id>" (fresh: skip the cache, for rendering a page)."""
        loop = asyncio.get_running_loop()
        async with self._locks[scope]:
            hit = self._cache.get(scope)
            if hit and not fresh and loop.time() - hit[0] < TTL:
                return hit[1]
            value = await compute(scope)
            if len(self._cache) > 2000:
                self._cache.clear()
            self._cache[scope] = (loop.time(), value)
            return value


async def compute(scope: str) -> str:
    """Read a stamp from the database: anything that changes what the page shows changes it."""
    if scope == "queue":
        row = (await Request.annotate(n=Count("id"), top=Max("id"), last=Max("updated_at"))
               .values("n", "top", "last"))[0]
        last = row["last"]
        return f"{row['n']}.{row['top'] or 0}.{last.timestamp() if hasattr(last, 'timestamp') else last}"
    request_id = int(scope.removeprefix("request:"))
    version = await Request.filter(id=request_id).values_list("version", flat=True)
    events = await AuditEvent.filter(request_id=request_id).count()
    return f"{version[0] if version else -1}.{events}"


STAMPS = web.AppKey("stamps", Stamps)


@needs(Permission.REQUESTS)
async def api_version(request: web.Request) -> web.Response:
    """GET /api/version?scope=queue|request:<id>&since=<stamp>&wait=<s>: the stamp, once it differs."""
    scope = request.query.get("scope", "queue")
    if not SCOPE.fullmatch(scope):
        return web.json_response({"error": "bad_scope"}, status=400)
    try:
        wait = min(max(float(request.query.get("wait", "0")), 0.0), MAX_WAIT)
    except ValueError:
        wait = 0.0
    stamps = request.app[STAMPS]
    since = request.query.get("since")
    stamp = await stamps.get(scope)
    loop = asyncio.get_running_loop()
    end = loop.time() + wait
    while stamp == since and loop.time() < end:
        if request.transport is None or request.transport.is_closing():
            break  # the tab went away
        await asyncio.sleep(STEP)
        stamp = await stamps.get(scope)
    return web.json_response({"stamp": stamp})


def add_routes(app: web.Application) -> None:
    """Register the live endpoint."""
    app[STAMPS] = Stamps()
    app.router.add_get("/api/version", api_version)
