"""Rendering for the web console: the jinja2 environment, pages with security headers, flash messages."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, select_autoescape

from edudesk.bot.web.labels import labels
from edudesk.core.config import Settings
from edudesk.core.people.access import Permission, allows
from edudesk.core.people.models import WebSession
from edudesk.core.people.staff import Actor
from edudesk.core.ports import Clock
from edudesk.core.requests.service import RequestService
from edudesk.core.signing.service import RecordService
from edudesk.core.text import local_time
from edudesk.resources import static_dir, web_dir

TEMPLATES = web_dir()  # package data (edudesk/resources.py)
STATIC = static_dir()
COOKIE = "edudesk_session"
FLASH_COOKIE = "edudesk_flash"
FLASHES = {"done": "done_flash", "bye": "bye"}  # keys only: a cookie never carries text to show
SECRET_WORDS = ("password", "secret", "token", "sealed", "csrf")
OPEN = "open"  # a page every signed-in person reaches, with or without a role (/whoami, sign-out)
PERMISSION_ATTR = "edudesk_permission"
H = TypeVar("H", bound=Callable[..., Any])


def needs(permission: Permission | str) -> Callable[[H], H]:
    """Mark a route handler with what it shows (core/people/access.py); the guard checks it before the handler runs.

    Unmarked handlers need `Permission.SIGN_IN` (any role); `OPEN` lets people without a role in.
    """
    def mark(handler: H) -> H:
        setattr(handler, PERMISSION_ATTR, permission)
        return handler
    return mark


@dataclass
class Console:
    """What every handler needs: settings, clock, the decision service and the template environment."""

    settings: Settings
    clock: Clock
    services: RequestService
    env: Environment
    records: RecordService | None = None  # school records (bot/web/records.py)

    @property
    def t(self) -> dict[str, Any]:
        """The labels of the configured language."""
        return labels(self.settings.general.language)

    @property
    def lang(self) -> str:
        """The configured language ("vi" or "en")."""
        return self.settings.general.language

    @property
    def secure(self) -> bool:
        """Whether cookies get the Secure flag (the console is reached over https)."""
        return self.settings.web_url.startswith("https")

    def when(self, value: datetime | None) -> str:
        """A moment in the office's time zone, "HH:MM dd/mm/YYYY"."""
        return local_time(value, self.settings.general.timezone) if value else ""

    def time_left(self, deadline: datetime | None, now: datetime) -> tuple[str, bool]:
        """("còn 3 giờ 10 phút" | "quá hạn 2 giờ", overdue) for a deadline."""
        if deadline is None:
            return "", False
        t = self.t
        if deadline.tzinfo is None:
            deadline = deadline.replace(tzinfo=UTC)  # SQLite drivers can hand back naive UTC
        seconds = (deadline - now).total_seconds()
        hours, rest = divmod(abs(int(seconds)), 3600)
        span = f"{hours} {t['hours']} {rest // 60} {t['minutes']}" if hours else f"{rest // 60} {t['minutes']}"
        if seconds < 0:
            return f"{t['overdue']} {span}", True
        return f"{t['left']} {span}".strip(), False


CONSOLE = web.AppKey("console", Console)
SESSION = web.RequestKey("session", WebSession)  # set by the guard when signed in
ACTOR = web.RequestKey("actor", Actor)
NONCE = web.RequestKey("nonce", str)


def make_env() -> Environment:
    """The jinja2 environment of templates/web (autoescaped)."""
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
                       trim_blocks=True, lstrip_blocks=True)


def console(request: web.Request) -> Console:
    """The console of the app serving `request`."""
    return request.app[CONSOLE]


def nonce(request: web.Request) -> str:
    """The CSP nonce of this response (for the inline <style>)."""
    if NONCE not in request:
        request[NONCE] = secrets.token_urlsafe(16)
    return request[NONCE]


def render(request: web.Request, template: str, *, status: int = 200, flash: str = "", error: str = "",
           **context: Any) -> web.Response:
    """An HTML page from templates/web with the actor, CSRF token, labels and flash messages."""
    c = console(request)
    session = request.get(SESSION)
    # An error page (a lost double submit, say) leaves a pending flash for the page it was meant for: two
    # posts of one browser at once must not have the loser's answer eat the winner's "done".
    consume = not error and FLASH_COOKIE in request.cookies
    if not flash and consume and request.cookies.get(FLASH_COOKIE) in FLASHES:
        flash = c.t[FLASHES[request.cookies[FLASH_COOKIE]]]
    html = c.env.get_template(template).render(
        t=c.t, actor=request.get(ACTOR), can={p.value: allows(request.get(ACTOR), p) for p in Permission},
        csrf=session.csrf if session else "", nonce=nonce(request),
        flash=flash, error=error, records_turns=request.get("records_turns", 0), **context)
    response = web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
    if consume:
        response.del_cookie(FLASH_COOKIE, path="/")
    return response


def redirect(request: web.Request, location: str, flash: str = "") -> web.Response:
    """A 303 after a POST, carrying a flash key to show on the next page."""
    response = web.Response(status=303, headers={"Location": location})
    if flash in FLASHES:
        response.set_cookie(FLASH_COOKIE, flash, max_age=60, path="/", httponly=True, samesite="Strict",
                            secure=console(request).secure)
    return response


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: CSP, no framing, no referrer (login tokens are in URLs), no caching of pages."""
    response.headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'self'; style-src 'self' 'nonce-{nonce(request)}'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"


def has_role(actor: Actor | None, roles: tuple[Any, ...]) -> bool:
    """Whether the signed-in actor holds one of `roles` (to hide buttons; the service enforces)."""
    return actor is not None and actor.has(*roles)


def clean_detail(detail: dict[str, Any] | None) -> list[tuple[str, str]]:
    """An audit event's detail as (key, text) pairs, leaving out anything secret-looking."""
    out: list[tuple[str, str]] = []
    for key, value in (detail or {}).items():
        if any(word in key.lower() for word in SECRET_WORDS) or key in ("label", "version"):
            continue
        if isinstance(value, list):
            parts = []
            for item in value:
                if isinstance(item, dict):
                    parts.append(" ".join(str(v) for k, v in item.items()
                                          if not any(w in k.lower() for w in SECRET_WORDS)))
                else:
                    parts.append(str(item))
            text = ", ".join(parts)
        elif isinstance(value, dict):
            text = ", ".join(f"{k}={v}" for k, v in value.items() if not any(w in k.lower() for w in SECRET_WORDS))
        else:
            text = str(value)
        if text:
            out.append((key, text[:300]))
    return out
