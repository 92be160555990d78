"""Sending issued records to the receiving portal from the web console (admins only): on /records, per issued
class, "Gửi lên hệ thống" (behind a confirmation) and the counts đã gửi / lỗi / chưa gửi; on
/records/classes/{id}/sent, each record's state with the receipt or the portal's answer. The handlers call
core/signing/sending.py, which checks the role and the class."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from edudesk.bot.web.records import ID, records_page, service
from edudesk.bot.web.render import ACTOR, Console, console, needs, redirect, render
from edudesk.core.errors import EdudeskError, NotAllowed
from edudesk.core.jobs import JobKind, JobState
from edudesk.core.models import Job
from edudesk.core.people.access import Permission
from edudesk.core.people.staff import Role
from edudesk.core.signing.models import SchoolClass
from edudesk.core.signing.sending import ISSUED, overview, request_send, send_rows, tally, unsent_ids, waiting_job
from edudesk.core.signing.sendmodels import SendState

WORDS = {
    "vi": {"title": "Gửi học bạ lên Cổng tiếp nhận", "send": "Gửi lên hệ thống", "states": "Trạng thái gửi",
           "confirm": "Gửi {n} học bạ lớp {klass} lên Cổng tiếp nhận (hệ thống của Sở/Bộ GD&ĐT)? Học bạ đã được "
                      "nhận sẽ không gửi lại.",
           "off": "Chưa bật gửi học bạ lên Cổng tiếp nhận ([portal] trong config.toml).",
           "none": "Chưa có lớp nào được xác nhận hoàn tất để gửi.",
           "counts": "{sent} đã gửi · {failed} lỗi · {unsent} chưa gửi", "waiting": "Đang gửi; lần gửi tiếp lúc {at}.",
           "receipt": "Biên nhận", "sent_at": "Ngày gửi", "answer": "Trả lời của Cổng tiếp nhận",
           "all_sent": "Cổng tiếp nhận đã nhận mọi học bạ của lớp.", "only_admin": "Chỉ quản trị viên gửi học bạ."},
    "en": {"title": "Sending records to the receiving portal", "send": "Send to the portal", "states": "Send states",
           "confirm": "Send {n} records of class {klass} to the receiving portal (the department's or ministry's "
                      "system)? Records it has accepted are not sent again.",
           "off": "Sending to the receiving portal is off ([portal] in config.toml).",
           "none": "No class has been confirmed complete yet.",
           "counts": "{sent} sent · {failed} failed · {unsent} not sent", "waiting": "Sending; next try at {at}.",
           "receipt": "Receipt", "sent_at": "Sent", "answer": "The portal's answer",
           "all_sent": "The portal has accepted every record of this class.",
           "only_admin": "Only administrators send records."},
}


def portal_words(c: Console) -> dict[str, str]:
    """The portal's words in the console's language."""
    return WORDS["en" if c.lang == "en" else "vi"]


async def portal_view(c: Console) -> dict[str, Any]:
    """For the admin's /records: each issued class with its send counts and any send in progress (a few queries
    for the whole school, no PDF read)."""
    classes = await SchoolClass.filter(state__in=list(ISSUED)).order_by("-year", "name")
    counts = await overview([k.id for k in classes])
    waiting: dict[int, datetime] = {}
    for job in await Job.filter(kind=JobKind.PORTAL_SEND, state__in=[JobState.PENDING, JobState.RUNNING]).values(
            "key", "run_after"):
        waiting[int(str(job["key"]).split(":")[1])] = job["run_after"]
    rows = []
    for k in classes:
        n = counts[k.id]
        rows.append({"id": k.id, "name": k.name, "year": k.year, "left": n[SendState.UNSENT] + n[SendState.FAILED],
                     "counts": {s.value: n[s] for s in SendState},
                     "waiting": c.when(waiting[k.id]) if k.id in waiting else ""})
    return {"portal": {"enabled": c.settings.portal.enabled and bool(c.settings.portal.url), "classes": rows,
                       "w": portal_words(c)}}


@needs(Permission.SIGN_IN)  # admins only: checked here and by the service
async def sent_page(request: web.Request, *, error: str = "") -> web.Response:
    """GET /records/classes/{id}/sent: each record's send state, receipt and the portal's answer."""
    c = console(request)
    service(c)
    w = portal_words(c)
    if not request[ACTOR].has(Role.ADMIN):
        return render(request, "error.html.j2", status=403, title=c.t["refused_title"], message=w["only_admin"])
    klass = await SchoolClass.get_or_none(id=int(request.match_info["id"]))
    if klass is None:
        raise web.HTTPNotFound()
    rows = await send_rows(klass.id, c.lang)
    waiting = await waiting_job(klass.id)
    left = len(await unsent_ids(klass.id)) if klass.state in ISSUED else 0
    n = tally(rows)
    return render(request, "records_sent.html.j2", error=error, klass=klass, w=w, when=c.when,
                  rows=[{"row": r, "label": r.label(c.lang)} for r in rows], left=left,
                  issued=klass.state in ISSUED, enabled=c.settings.portal.enabled and bool(c.settings.portal.url),
                  counts=w["counts"].format(sent=n[SendState.SENT], failed=n[SendState.FAILED],
                                            unsent=n[SendState.UNSENT]),
                  waiting=w["waiting"].format(at=c.when(waiting.run_after)) if waiting is not None else "")


@needs(Permission.SIGN_IN)  # admins only: the service checks the role (and audits a refusal)
async def send_class(request: web.Request) -> web.Response:
    """POST /records/classes/{id}/send: Gửi lên hệ thống, the class's records not accepted yet (a job)."""
    c = console(request)
    class_id = int(request.match_info["id"])
    back = str((await request.post()).get("back", ""))
    try:
        await request_send(service(c), request[ACTOR], class_id)
    except NotAllowed as exc:
        return render(request, "error.html.j2", status=403, title=c.t["refused_title"], message=exc.in_words(c.lang))
    except EdudeskError as exc:
        if back == "sent":
            return await sent_page(request, error=exc.in_words(c.lang))
        return await records_page(request, error=exc.in_words(c.lang))
    return redirect(request, f"/records/classes/{class_id}/sent", flash="done")  # the page says it is being sent


def add_routes(app: web.Application) -> None:
    """Register the send page and its button."""
    app.router.add_get(f"/records/classes/{ID}/sent", sent_page)
    app.router.add_post(f"/records/classes/{ID}/send", send_class)
