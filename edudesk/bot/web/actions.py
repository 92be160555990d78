"""One-time action links (`/a/<token>`, handed out on Zalo cards) and the account's chat settings on /whoami.

GET /a/<token> only shows what the link does (link previews and mail scanners open links: a GET must not
act); the button POSTs the token in the form body (so it is in no access log) and the action runs once, as
the person the link was made for, whose roles the service checks again. The link is its own credential,
like the password links: no sign-in needed, refusals (forged, replayed, expired) audited. A browser signed in
to the console as someone else is refused (audited, the link stays usable by its owner): a forwarded link
must not act in the owner's name from a colleague's desk.
"""

from __future__ import annotations

import contextlib
import re

from aiohttp import web

from edudesk.bot.web.render import ACTOR, OPEN, console, needs, redirect, render
from edudesk.core.chats.actions import ButtonAction
from edudesk.core.chats.surfaces import surface_of
from edudesk.core.errors import EdudeskError
from edudesk.core.people.chatlinks import ActionRefused, Grant, issue_link_code, peek_action, redeem_action
from edudesk.core.people.models import Staff
from edudesk.core.people.staff import Actor, actor_for_staff, choose_notify_via
from edudesk.core.requests.models import Request
from edudesk.core.requests.rows import mismatch_rows
from edudesk.core.requests.service import ROLES, Action
from edudesk.core.signing.models import SchoolClass

_TOKEN_TAIL = re.compile(r"[^A-Za-z0-9_-].*$", re.S)  # chat apps glue punctuation to links
_STATUS = {"action_forged": 404, "action_not_yours": 403}


async def _what(request: web.Request, grant: Grant) -> str:
    labels = console(request).t["links"]["actions"]
    klass = await SchoolClass.get_or_none(id=grant.target) if grant.action is ButtonAction.REC_SIGN else None
    return str(labels.get(grant.action, grant.action)).format(target=grant.target, klass=klass.name if klass else "")


async def action_page(request: web.Request) -> web.Response:
    """GET /a/{token}: what the link does, for whom, until when; a button that POSTs."""
    c = console(request)
    token = _TOKEN_TAIL.sub("", request.match_info["token"])[:200]
    signed_in = request.get(ACTOR)
    try:
        grant = await peek_action(token, c.clock,
                                  actor=signed_in.label if signed_in else f"web:{request.remote or '?'}",
                                  staff_id=signed_in.staff_id if signed_in else None)
    except ActionRefused as exc:
        return render(request, "action.html.j2", status=_STATUS.get(exc.code, 410),
                      refused=exc.in_words(console(request).lang))
    staff = await Staff.get_or_none(id=grant.staff_id)
    return render(request, "action.html.j2", token=token, what=await _what(request, grant),
                  name=staff.name if staff else "?", expires=c.when(grant.expires_at) if grant.expires_at else "",
                  confirm=await _mismatches(request, grant))


async def _mismatches(request: web.Request, grant: Grant) -> list[str]:
    """ "Hợp lệ" over a ✗: the page names the differences from the registry, and its button is the second tap.

    Shown only when the link's owner may approve (they are shown on the owner's card already)."""
    if grant.action is not ButtonAction.APPROVE:
        return []
    c = console(request)
    owner = await actor_for_staff(grant.staff_id, c.settings)
    target = await Request.get_or_none(id=grant.target)
    if owner is None or target is None or not owner.has(*ROLES[Action.APPROVE]):
        return []
    lines, _ = await mismatch_rows(target)
    return lines["en" if c.lang == "en" else "vi"]


async def action_run(request: web.Request) -> web.Response:
    """POST /a/: use the link once and do the action as its owner."""
    c = console(request)
    token = str((await request.post()).get("token", ""))[:200]
    signed_in = request.get(ACTOR)  # a browser signed in to the console as someone else may not use the link
    try:
        grant = await redeem_action(token, c.clock,
                                    actor=signed_in.label if signed_in else f"link:{request.remote or '?'}",
                                    staff_id=signed_in.staff_id if signed_in else None)
        base = await actor_for_staff(grant.staff_id, c.settings)
        if base is None:
            raise ActionRefused("Tài khoản cán bộ này đã bị khoá.", code="action_disabled")
        actor = Actor(f"link:{grant.staff_id}", base.name, base.roles, base.staff_id)
        if grant.action is ButtonAction.REC_SIGN:
            if c.records is None:
                raise EdudeskError(c.t["rec"]["disabled"], code="records_off")
            session = await c.records.start_signing(actor, grant.target, grant.arg)
            done = f"{await _what(request, grant)} — {len(session.steps)}"
        elif grant.action is ButtonAction.SEND_CONFIRM:
            done = (await c.services.send_confirmation(grant.target, actor, grant.version)).text
        else:
            # The page named any difference from the registry before this button: it is the confirming tap.
            await c.services.act(grant.target, Action(grant.action), actor, version=grant.version,
                                 confirmed=grant.action is ButtonAction.APPROVE)
            done = await _what(request, grant)
    except EdudeskError as exc:
        return render(request, "action.html.j2", status=_STATUS.get(exc.code, 200),
                      refused=exc.in_words(console(request).lang))
    return render(request, "action.html.j2", done=done)


@needs(OPEN)
async def link_code(request: web.Request) -> web.Response:
    """POST /whoami/link-code: a one-time code to link the person's account on a chat surface."""
    from edudesk.bot.web.queue import whoami_page

    c = console(request)
    actor = request[ACTOR]
    if actor.staff_id is None:
        return redirect(request, "/whoami")
    surface = surface_of(str((await request.post()).get("surface", "")))
    if surface is None:
        return redirect(request, "/whoami")
    request["link_code"] = await issue_link_code(actor.staff_id, surface, c.settings, c.clock, issued_by=actor.label)
    request["link_surface"] = surface.capitalize()
    return await whoami_page(request)


@needs(OPEN)
async def notify_via(request: web.Request) -> web.Response:
    """POST /whoami/notify: where the person's own notices go."""
    c = console(request)
    actor = request[ACTOR]
    value = str((await request.post()).get("notify_via", ""))[:40]
    with contextlib.suppress(EdudeskError):  # no staff member behind the session, or a forged value: no change
        await choose_notify_via(actor, value, c.clock.now())
    return redirect(request, "/whoami", flash="done")


def add_routes(app: web.Application) -> None:
    """Register the action link pages and the /whoami chat settings."""
    app.router.add_get("/a/{token}", action_page)
    app.router.add_post("/a/", action_run)
    app.router.add_post("/whoami/link-code", link_code)
    app.router.add_post("/whoami/notify", notify_via)
