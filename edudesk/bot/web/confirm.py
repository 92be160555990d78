"""The sender confirmation page: GET /confirm/{token} explains and offers a button, POST /confirm/ confirms once.

Public (the person confirming is not staff): the token is the credential. A GET changes nothing, because mail
scanners and link previews open links; only the button's POST, with the token in the form body (never in a
URL, so in no access log), confirms. An unknown and a used link get the same page; an expired one says so.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from edudesk.bot.web.labels import labels
from edudesk.bot.web.password import HEADERS
from edudesk.bot.web.render import console, nonce
from edudesk.core.errors import LinkRefused
from edudesk.core.intake.confirm import LinkInfo, Refusal, open_confirmation, peek_confirmation
from edudesk.core.requests.models import Request
from edudesk.core.words import words

_TOKEN_TAIL = re.compile(r"[^A-Za-z0-9_\-].*$", re.S)  # mail clients glue punctuation to links


def _lang(lang: str | None, default: str) -> str:
    return "en" if (lang or default) == "en" else "vi"


def _page(request: web.Request, lang: str, *, status: int = 200, **context: Any) -> web.Response:
    c = console(request)
    html = c.env.get_template("confirm.html.j2").render(t=labels(lang), actor=None, csrf="", nonce=nonce(request),
                                                        flash="", error="", **context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8", headers=HEADERS)


async def _refused(request: web.Request, refused: LinkRefused) -> web.Response:
    c = console(request)
    asked: str | None = None
    if refused.request_id is not None:  # only an expired link names its request (the reader holds its token)
        row = await Request.filter(id=refused.request_id).only("id", "lang").first()
        asked = row.lang if row else None
    lang = _lang(asked, c.settings.general.language)
    return _page(request, lang, status=410 if refused.reason == Refusal.EXPIRED else 404, reason=refused.reason,
                 message=words(lang)(f"confirm.refused.{refused.reason}"))


async def confirm_page(request: web.Request) -> web.Response:
    """GET /confirm/{token}: what the request is, whose confirmation, until when; a button that POSTs."""
    c = console(request)
    token = _TOKEN_TAIL.sub("", request.match_info["token"])[:200]
    found = await peek_confirmation(token, c.clock)
    if isinstance(found, LinkRefused):
        return await _refused(request, found)
    info: LinkInfo = found
    lang = _lang(info.lang, c.settings.general.language)
    w = words(lang)
    return _page(request, lang, token=token, number=info.request_id, name=info.name, sender=info.sender,
                 kind=w.label("mailkind", info.kind), expires=c.when(info.expires_at))


async def confirm_post(request: web.Request) -> web.Response:
    """POST /confirm/: use the link once; the request moves on when everyone it names has confirmed."""
    c = console(request)
    token = str((await request.post()).get("token", ""))[:200]
    done = await open_confirmation(token, c.settings, c.clock, c.services.queue, client=request.remote or "")
    if isinstance(done, LinkRefused):
        return await _refused(request, done)
    return _page(request, _lang(done.lang, c.settings.general.language), done=True, number=done.request_id)


def add_routes(app: web.Application) -> None:
    """Register the confirmation page (public: under session.PUBLIC_PREFIXES)."""
    app.router.add_get("/confirm/{token}", confirm_page)
    app.router.add_post("/confirm/", confirm_post)
