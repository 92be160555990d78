"""One request: its card and buttons, people and findings, audit trail, raw mails; the decisions posted."""

from __future__ import annotations

import csv
import io
import re
from datetime import date
from typing import Any

from aiohttp import web
from tortoise.expressions import Q

from edudesk.bot.cards import build_card, load_view, preset
from edudesk.bot.web.live import STAMPS
from edudesk.bot.web.render import ACTOR, Console, clean_detail, console, has_role, needs, redirect, render
from edudesk.core.chats.actions import ButtonAction
from edudesk.core.errors import EdudeskError, NotFound
from edudesk.core.intake.confirm import SEND_ROLES
from edudesk.core.intake.models import InboundMail
from edudesk.core.models import AuditEvent
from edudesk.core.people.access import Permission
from edudesk.core.requests.models import RequestPerson
from edudesk.core.requests.rows import ROW_ROLES, ConfirmNeeded, row_errors
from edudesk.core.requests.service import ROLES, Action, AlreadyDecided
from edudesk.core.words import detail_pairs, event_label

REASONED = (Action.REJECT.value, Action.ASK_INFO.value)
_FORMULA = re.compile(r"[=+\-@\t\r]")
_PHONE = re.compile(r"\+?\d[\d .]*")


def _dob(value: Any) -> str:
    try:
        return date.fromisoformat(str(value)).strftime("%d/%m/%Y") if value else ""
    except ValueError:
        return str(value)


def _findings(person: RequestPerson) -> list[dict[str, str]]:
    marks = {"error": "✗", "warning": "⚠"}
    return [{"mark": marks.get(p.get("severity", "error"), "✗"), "severity": p.get("severity", "error"),
             "text": p.get("message", "")} for p in person.problems or [] if p.get("severity") != "info"]


def _person(person: RequestPerson, keepable: set[int] | None = None) -> dict[str, Any]:
    data = person.data or {}
    return {"row": person.row + 1, "full_name": person.full_name, "ident": person.person_id,
            "dob": _dob(data.get("date_of_birth")), "unit": data.get("class") or data.get("unit", ""),
            "mobile": data.get("mobile", ""), "address": person.proposed_address, "findings": _findings(person),
            # what the office may decide about this row (core/requests/rows.py checks it again)
            "held": bool(row_errors(person)) and not person.approved_by, "approved_by": person.approved_by,
            "named": any(p.get("code") in ("name_mismatch", "name_diacritics") for p in person.problems or []),
            "name_source": person.name_source, "keepable": person.row in (keepable or set()),
            "skipped": person.outcome == "skipped", "kept": person.result == "kept"}


def _buttons(c: Console, card_buttons: Any, actor: Any) -> list[dict[str, Any]]:
    out = []
    for row in card_buttons:
        for b in row:
            if b.url:
                continue  # the page has its own download links
            if b.action == ButtonAction.SEND_CONFIRM:
                if has_role(actor, SEND_ROLES):
                    out.append({"label": b.label, "action": b.action, "version": b.version, "presets": []})
                continue
            if b.action not in Action._value2member_map_ or not has_role(actor, ROLES[Action(b.action)]):
                continue  # hidden; the service refuses a forged post anyway
            presets: tuple[str, ...] = ()
            if b.action in REASONED:
                presets = c.settings.chat.reject_reasons if b.action == "reject" else c.settings.chat.info_questions
            out.append({"label": b.label, "action": b.action, "version": b.version, "presets": list(presets)})
    return out


async def _page(request: web.Request, request_id: int, *, status: int = 200, error: str = "",
                confirm: list[str] | None = None) -> web.Response:
    c = console(request)
    stamp = await request.app[STAMPS].get(f"request:{request_id}", fresh=True)
    view = await load_view(request_id)
    now = c.clock.now()
    card = build_card(view, "web", c.settings, now)
    mails = await InboundMail.filter(request_id=request_id).order_by("id").only(
        "id", "message_id", "source", "received_at", "outcome", "size")
    mail_ids = [m.id for m in mails]
    events = await AuditEvent.filter(Q(request_id=request_id) | Q(mail_id__in=mail_ids or [0])).order_by("id")
    t = c.t
    audit = [{"at": c.when(e.at), "actor": e.actor,
              "action": event_label(e.action, t["lang"], (e.detail or {}).get("label", "")), "code": e.action,
              "detail": detail_pairs(clean_detail(e.detail), t["lang"], c.settings.general.timezone)} for e in events]
    actor = request[ACTOR]
    staff = await c.services.reassign_offer(request_id, actor)  # the rule lives in the use case
    r = view.request
    left, overdue = c.time_left(r.deadline, now)
    return render(request, "request.html.j2", status=status, error=error, r=r, card=card,
                  buttons=_buttons(c, card.buttons, actor),
                  persons=[_person(p, view.keepable) for p in view.persons],
                  row_actions=has_role(actor, ROW_ROLES), confirm=confirm or [],
                  audit=audit, mails=[{"id": m.id, "at": c.when(m.received_at), "source": m.source,
                                       "outcome": m.outcome, "size": m.size} for m in mails],
                  staff=staff, stamp=stamp, scope=f"request:{request_id}", live_url=f"/requests/{request_id}",
                  left=left, overdue=overdue,
                  state_label=t["states"].get(r.state, r.state))


def _id(request: web.Request, name: str = "id") -> int:
    return int(request.match_info[name])


@needs(Permission.REQUESTS)
async def request_page(request: web.Request) -> web.Response:
    """GET /requests/{id}: card, buttons the actor may use, people, audit trail, raw mails."""
    return await _page(request, _id(request))


@needs(Permission.REQUESTS)
async def act(request: web.Request) -> web.Response:
    """POST /requests/{id}/act: one decision through RequestService.act; errors become a flash, never a 500."""
    c = console(request)
    request_id = _id(request)
    form = await request.post()
    action = str(form.get("action", ""))[:32]
    try:
        version = int(str(form.get("version", "")))
    except ValueError:
        return await _page(request, request_id, error=c.t["bad_form"])
    reason = " ".join(str(form.get("reason", "")).split())
    try:
        if not reason and action in REASONED and str(form.get("reason_preset", "")).isdigit():
            reason = preset(c.settings, action, int(str(form["reason_preset"])))
        if action == ButtonAction.SEND_CONFIRM:  # the confirmation link of an unverified sender
            await c.services.send_confirmation(request_id, request[ACTOR], version)
        else:
            await c.services.act(request_id, action, request[ACTOR], reason=reason, version=version,
                                 confirmed=action == "approve" and form.get("confirmed") == "1")
    except ConfirmNeeded as ask:  # "Hợp lệ" over a ✗: the page names the differences and asks once more
        return await _page(request, request_id, confirm=ask.in_words(c.lang).split("\n"))
    except AlreadyDecided as exc:
        return await _page(request, request_id, status=409, error=exc.in_words(console(request).lang))
    except EdudeskError as exc:
        return await _page(request, request_id, error=exc.in_words(console(request).lang))
    return redirect(request, f"/requests/{request_id}", flash="done")


ROW_DECISIONS = ("approve_row", "form_name", "registry_name", "keep")


@needs(Permission.REQUESTS)
async def row_act(request: web.Request) -> web.Response:
    """POST /requests/{id}/row: a decision about one row (approve it, the name's spelling, keep the account)."""
    c = console(request)
    request_id = _id(request)
    form = await request.post()
    what = str(form.get("what", ""))
    try:
        version, row = int(str(form.get("version", ""))), int(str(form.get("row", "")))
    except ValueError:
        return await _page(request, request_id, error=c.t["bad_form"])
    if what not in ROW_DECISIONS:
        return await _page(request, request_id, error=c.t["bad_form"])
    desk, actor = c.services.rows, request[ACTOR]
    try:
        if what == "approve_row":
            await desk.approve_row(request_id, row, actor, version)
        elif what == "keep":
            await desk.keep_account(request_id, row, actor, version)
        else:
            await desk.use_form_name(request_id, row, actor, version, form=what == "form_name")
    except AlreadyDecided as exc:
        return await _page(request, request_id, status=409, error=exc.in_words(c.lang))
    except EdudeskError as exc:
        return await _page(request, request_id, error=exc.in_words(c.lang))
    return redirect(request, f"/requests/{request_id}", flash="done")


@needs(Permission.REQUESTS)
async def assign(request: web.Request) -> web.Response:
    """POST /requests/{id}/assign: a head gives the request to one staff member."""
    c = console(request)
    request_id = _id(request)
    form = await request.post()
    try:
        await c.services.reassign(request_id, int(str(form.get("staff_id", ""))), request[ACTOR])
    except ValueError:
        return await _page(request, request_id, error=c.t["bad_form"])
    except AlreadyDecided as exc:
        return await _page(request, request_id, status=409, error=exc.in_words(console(request).lang))
    except EdudeskError as exc:
        return await _page(request, request_id, error=exc.in_words(console(request).lang))
    return redirect(request, f"/requests/{request_id}", flash="done")


@needs(Permission.RAW_MAIL)
async def raw_mail(request: web.Request) -> web.Response:
    """GET /requests/{id}/mail/{mail_id}.eml: the mail as received, as an attachment."""
    request_id, mail_id = _id(request), _id(request, "mail_id")
    mail = await InboundMail.get_or_none(id=mail_id, request_id=request_id)
    if mail is None:
        raise NotFound(f"Yêu cầu YC-{request_id} không có thư số {mail_id}.")
    return web.Response(body=bytes(mail.content), content_type="message/rfc822", headers={
        "Content-Disposition": f'attachment; filename="YC-{request_id}-{mail_id}.eml"'})


def _cell(value: Any) -> str:
    text = str(value or "")
    # Mail content is untrusted: a cell Excel would run as a formula is kept as text (phone numbers pass).
    return "'" + text if _FORMULA.match(text) and not _PHONE.fullmatch(text) else text


@needs(Permission.EXPORT)
async def rows_csv(request: web.Request) -> web.Response:
    """GET /requests/{id}/rows.csv: the people as CSV, UTF-8 with a BOM so Excel reads Vietnamese."""
    t = console(request).t
    request_id = _id(request)
    view = await load_view(request_id)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([t[k] for k in ("row", "full_name", "person_id", "date_of_birth", "unit_class", "mobile",
                                    "address", "findings")])
    for p in map(_person, view.persons):
        writer.writerow([_cell(v) for v in (p["row"], p["full_name"], p["ident"], p["dob"], p["unit"],
                                            p["mobile"], p["address"],
                                            "; ".join(f"{f['mark']} {f['text']}" for f in p["findings"]))])
    return web.Response(body=("\ufeff" + out.getvalue()).encode("utf-8"), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="YC-{request_id}.csv"'})


def add_routes(app: web.Application) -> None:
    """Register the request routes."""
    number = r"{id:\d{1,18}}"
    app.router.add_get(f"/requests/{number}", request_page)
    app.router.add_post(f"/requests/{number}/act", act)
    app.router.add_post(f"/requests/{number}/assign", assign)
    app.router.add_post(f"/requests/{number}/row", row_act)
    app.router.add_get(f"/requests/{number}/rows.csv", rows_csv)
    app.router.add_get(f"/requests/{number}/mail/{{mail_id:\\d{{1,18}}}}.eml", raw_mail)
