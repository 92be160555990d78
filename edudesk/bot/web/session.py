"""Sign-in, sign-out and the guard every request passes: Origin check, session cookie, CSRF token."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web
from yarl import URL

from edudesk.bot.web.render import ACTOR, COOKIE, OPEN, PERMISSION_ATTR, SESSION, console, needs, redirect, render
from edudesk.core.errors import EdudeskError
from edudesk.core.models import AuditEvent
from edudesk.core.people.access import Permission, allows, audit_denial, denial_text
from edudesk.core.people.loginmail import normalise, request_login_link, safe_path
from edudesk.core.people.staff import Actor, actor_for_staff
from edudesk.core.people.webauth import close_session, consume_login, open_session, peek_login, session_for

log = logging.getLogger(__name__)
# The operator's pages (bot/web/ops.py): no session lookup, so /readyz answers while the database is down.
OPS_PATHS = frozenset(("/healthz", "/readyz", "/metrics"))
PUBLIC_PREFIXES = ("/login/", "/p/", "/a/", "/confirm/")  # with "/login" and /static/: reachable signed out (/p/:
# password links; /a/: one-time action links; /confirm/: sender confirmation links, each its own credential)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else ""


def origin_ok(request: web.Request) -> bool:
    """A POST must come from the console's own pages: Origin, when real, is ours (public_url or the Host used).

    Our own `Referrer-Policy: no-referrer` makes browsers send `Origin: null` on same-origin form posts, so a
    null Origin passes only when the browser also says `Sec-Fetch-Site: same-origin`; a sandboxed frame on
    another site sends null too, but with `cross-site`.
    """
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # old browsers and non-browser clients: the CSRF token still has to match
    if origin.strip() == "null":
        return site == "same-origin"
    allowed = {f"{request.scheme}://{request.host}".lower()}
    public = console(request).settings.web.public_url
    if public:
        allowed.add(_origin(public))
    return origin.strip().lower() in allowed


async def refuse(request: web.Request, reason: str) -> web.Response:
    """The 403 page for a POST that failed the Origin or CSRF check, audited."""
    c = console(request)
    actor = request.get(ACTOR)
    await AuditEvent.create(at=c.clock.now(), actor=actor.label if actor else "web", action="web_csrf_refused",
                            detail={"path": request.path[:200], "reason": reason,
                                    "origin": request.headers.get("Origin", "")[:200],
                                    "site": request.headers.get("Sec-Fetch-Site", "")[:40]})
    log.warning("web console: refused a POST to %s (%s; Origin %r, Sec-Fetch-Site %r)", request.path, reason,
                request.headers.get("Origin"), request.headers.get("Sec-Fetch-Site"))
    return render(request, "error.html.j2", status=403, title=c.t["refused_title"], message=c.t["csrf_refused"])


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Origin check on POSTs; the session and actor from the cookie; sign-in required; CSRF on POSTs."""
    c = console(request)
    if request.method == "POST" and not origin_ok(request):
        return await refuse(request, "origin")
    if request.path.startswith("/static/") or request.path in OPS_PATHS:
        return await handler(request)  # no database round trip for the script
    session = await session_for(request.cookies.get(COOKIE, ""), c.clock)
    actor = await actor_for_staff(session.staff_id, c.settings) if session else None
    if actor is not None and session is not None:
        request[SESSION], request[ACTOR] = session, actor
    if request.path == "/login" or request.path.startswith(PUBLIC_PREFIXES):
        return await handler(request)
    if actor is None or session is None:
        if request.path.startswith("/api/"):
            return web.json_response({"error": "signed_out"}, status=401)
        target = request.path_qs if request.method == "GET" else "/"
        raise web.HTTPFound(str(URL("/login").with_query(next=target)) if target != "/" else "/login")
    if request.method == "POST":
        form = await request.post()
        sent = str(form.get("csrf", ""))
        if not sent or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
            return await refuse(request, "csrf")
    try:
        return await handler(request)
    except EdudeskError as exc:  # a domain error is a message for the user, never a 500
        return render(request, "error.html.j2", status=404 if exc.code == "not_found" else 200,
                      title=c.t["error_title"], message=exc.in_words(console(request).lang))


def permission_of(request: web.Request) -> Permission | None:
    """What the matched route shows (its handler's `needs` mark); None for open pages and unknown paths."""
    route = request.match_info.route
    if route.resource is None:
        return None  # no such page: the 404 page tells nothing
    mark = getattr(request.match_info.handler, PERMISSION_ATTR, Permission.SIGN_IN)
    return None if mark == OPEN else Permission(mark)


@web.middleware
async def access(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Who may see what (core/people/access.py), for the route's `needs` mark: a 403 (a page, or JSON for /api/) and an
    audit entry otherwise. The innermost middleware: the guard has found the actor, the nav badges are set."""
    actor = request.get(ACTOR)
    public = request.path == "/login" or request.path.startswith((*PUBLIC_PREFIXES, "/static/")) or (
        request.path in OPS_PATHS)
    if actor is not None and not public and request.match_info.route.resource is not None and not hasattr(
            request.match_info.handler, PERMISSION_ATTR):
        # Fail closed: a page added without saying what it shows is shown to nobody (and the log says why).
        log.error("web console: %s %s has no access mark (@needs): refused", request.method, request.path)
        c = console(request)
        return render(request, "error.html.j2", status=403, title=c.t["refused_title"], message=c.t["not_found"])
    permission = permission_of(request) if actor is not None and not public else None
    if permission is None or allows(actor, permission):
        return await handler(request)
    assert actor is not None
    c = console(request)
    await audit_denial(actor, permission, f"{request.method} {request.path}", surface="web", clock=c.clock)
    log.info("web console: %s refused %s %s (%s)", actor.key, request.method, request.path, permission.value)
    if request.path.startswith("/api/"):
        return web.json_response({"error": "forbidden"}, status=403)
    text = c.t["no_role"] if not actor.roles else denial_text(actor, permission, c.t["lang"])
    return render(request, "error.html.j2", status=403, title=c.t["refused_title"], message=text)


def _next(request: web.Request) -> str:
    """Where to go after signing in: a path on this console only (`loginmail.safe_path`)."""
    return safe_path(request.query.get("next", ""))


async def login_help(request: web.Request) -> web.Response:
    """GET /login: the form that mails a sign-in link, and the other ways to get one."""
    return render(request, "login.html.j2", next=_next(request))


async def login_by_mail(request: web.Request) -> web.Response:
    """POST /login/mail (Origin-checked by the guard): queue a sign-in link for an institutional address; the
    same answer whatever the address, known or not, over the limit or not."""
    c = console(request)
    form = await request.post()
    address = normalise(str(form.get("address", "")))
    target = safe_path(str(form.get("next", "")))
    await request_login_link(address, request.remote or "", c.settings, c.clock, c.services.queue, next_path=target)
    sent = str(c.t["login_mail_sent"]).format(address=address[:254],
                                             minutes=f"{c.settings.web.login_link_minutes:g}")
    return render(request, "login.html.j2", sent=sent, next=target)


async def login_confirm(request: web.Request) -> web.Response:
    """GET /login/{token}: a page with a sign-in button (a link scanner's GET consumes nothing)."""
    token = request.match_info["token"]
    try:
        await peek_login(token, console(request).clock)
    except EdudeskError as exc:
        # An expired link (a sign-now mail read late): the page offers a new one, landing where that one did.
        return render(request, "login.html.j2", status=410, error=exc.in_words(console(request).lang),
                      next=_next(request))
    return render(request, "login_confirm.html.j2", token=token, next=_next(request))


def home_of(actor: Actor | None) -> str:
    """Where a sign-in lands: the queue for request roles, school records for signers, else the account page."""
    if allows(actor, Permission.REQUESTS):
        return "/"
    return "/records" if allows(actor, Permission.SIGN_IN) else "/whoami"


async def login_submit(request: web.Request) -> web.Response:
    """POST /login: consume the link, open a session, set the cookie, go to the person's home page."""
    c = console(request)
    form = await request.post()
    try:
        staff_id = await consume_login(str(form.get("token", "")), c.clock)
    except EdudeskError as exc:
        return render(request, "login.html.j2", status=410, error=exc.in_words(console(request).lang), next="")
    old = request.cookies.get(COOKIE)
    if old:
        await close_session(old, c.clock)
    cookie, _csrf = await open_session(staff_id, c.settings, c.clock)
    target = safe_path(str(form.get("next", "")))  # a mailed link's landing page (a sign-now mail: /records)
    response = redirect(request, target or home_of(await actor_for_staff(staff_id, c.settings)))
    response.set_cookie(COOKIE, cookie, httponly=True, samesite="Strict", secure=c.secure, path="/",
                        max_age=int(c.settings.web.session_hours * 3600))
    return response


@needs(OPEN)
async def logout(request: web.Request) -> web.Response:
    """POST /logout (CSRF-checked by the guard): end the session, clear the cookie."""
    await close_session(request.cookies.get(COOKIE, ""), console(request).clock)
    response = redirect(request, "/login", flash="bye")
    response.del_cookie(COOKIE, path="/")
    return response


def add_routes(app: web.Application) -> None:
    """Register the sign-in routes."""
    app.router.add_get("/login", login_help)
    app.router.add_post("/login", login_submit)
    app.router.add_post("/login/mail", login_by_mail)
    app.router.add_get("/login/{token}", login_confirm)
    app.router.add_post("/logout", logout)
