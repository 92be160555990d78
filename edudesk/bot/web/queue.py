"""The queue of open requests (filters, deadlines), the registry search and "who am I"."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import reduce
from operator import or_
from typing import Any

from aiohttp import web
from tortoise.expressions import Case, Q, When
from tortoise.functions import Count

from edudesk.bot.web.live import STAMPS
from edudesk.bot.web.render import ACTOR, SESSION, Console, console, needs, render
from edudesk.bot.web.render import OPEN as OPEN_PAGE
from edudesk.core.config import Settings
from edudesk.core.people.access import Permission
from edudesk.core.people.models import RegistryEntry, Staff
from edudesk.core.requests.models import Request, RequestPerson
from edudesk.core.requests.queries import request_queue
from edudesk.core.requests.workflow import OPEN_STATES, State
from edudesk.core.text import fold
from edudesk.core.words import words

OPEN = [s.value for s in OPEN_STATES]
QUEUE_PAGE = 50
REGISTRY_PAGE = 50
# The SLA glance's bars: hours the current step has run. Each step has its own limit (24 h by default), so the
# age of the step, not of the request, says who is late: a request approved an hour ago is on time for the
# technical step however old the mail is, and time waiting for the requester (need_info) runs no deadline.
AGE_BUCKETS: tuple[tuple[int, int | None], ...] = ((0, 4), (4, 12), (12, 24), (24, 48), (48, None))
SLA_BAR_HEIGHT = 80  # the tallest bar, in the chart's units (queue.html.j2 draws it)
SLA_WORDS = {
    "vi": {"title": "Yêu cầu đang mở theo thời gian đã qua ở bước hiện tại",
           "buckets": ("< 4 giờ", "4–12 giờ", "12–24 giờ", "24–48 giờ", "> 48 giờ"),
           "on_time": "trong hạn", "late": "quá hạn", "overdue": "yêu cầu quá hạn", "show": "Xem các yêu cầu quá hạn",
           "waiting": "{n} yêu cầu đang chờ người gửi bổ sung (không tính hạn)."},
    "en": {"title": "Open requests by time spent in their current step",
           "buckets": ("< 4 h", "4–12 h", "12–24 h", "24–48 h", "> 48 h"),
           "on_time": "on time", "late": "overdue", "overdue": "overdue requests", "show": "Show the overdue requests",
           "waiting": "{n} waiting for the requester's answer (no deadline runs)."},
}


@dataclass(frozen=True)
class SlaGlance:
    """Open requests per `AGE_BUCKETS` bar, on time and past their step's deadline, and those waiting for the
    requester (no deadline)."""

    on_time: tuple[int, ...]
    late: tuple[int, ...]
    waiting: int

    @property
    def overdue(self) -> int:
        """Open requests past their step's deadline."""
        return sum(self.late)

    @property
    def tallest(self) -> int:
        """The highest bar (1 at least: the chart's scale)."""
        return max(1, *(a + b for a, b in zip(self.on_time, self.late, strict=True)))


async def sla_glance(settings: Settings, now: datetime) -> SlaGlance:
    """The open requests by how long their current step has run, split on time / overdue: one GROUP BY.

    A step started at its deadline minus its limit ([sla] check_hours for the office's check, provision_hours
    for the technical step, provisioning included), so "ran less than h hours" is "deadline after now + limit - h".
    """
    limits = {State.RECEIVED: settings.sla.check_hours, State.APPROVED: settings.sla.provision_hours,
              State.PROVISIONING: settings.sla.provision_hours}

    def ran_less_than(hours: int) -> Q:
        return reduce(or_, (Q(state=s.value, deadline__gt=now + timedelta(hours=limit - hours))
                            for s, limit in limits.items()))

    last = len(AGE_BUCKETS) - 1
    bucket = Case(When(Q(state=State.NEED_INFO.value) | Q(deadline__isnull=True), then="waiting"),
                  *(When(ran_less_than(high), then=str(i)) for i, (_, high) in enumerate(AGE_BUCKETS) if high),
                  default=str(last))
    late = Case(When(deadline__lt=now, then="1"), default="0")
    on_time, overdue, waiting = [0] * len(AGE_BUCKETS), [0] * len(AGE_BUCKETS), 0
    for row in await Request.filter(state__in=OPEN).annotate(bucket=bucket, late=late, n=Count("id")).group_by(
            "bucket", "late").values("bucket", "late", "n"):
        if row["bucket"] == "waiting":
            waiting += int(row["n"])
        else:
            (overdue if str(row["late"]) == "1" else on_time)[int(row["bucket"])] += int(row["n"])
    return SlaGlance(tuple(on_time), tuple(overdue), waiting)


def _problems(c: Console, r: Request, people_with_problems: int) -> list[str]:
    """What is wrong with a request, for its queue row: its own problems, then how many people have one."""
    shown = [str(p.get("message") or p.get("code")) if isinstance(p, dict) else str(p) for p in r.problems or []]
    if people_with_problems:
        shown.append(words(c.lang)("card.with_problems", n=people_with_problems))
    return shown


def _row(c: Console, r: Request, people: int, now: datetime, people_with_problems: int = 0) -> dict[str, Any]:
    t = c.t
    left, overdue = c.time_left(r.deadline, now)
    return {"id": r.id, "kind": t["kinds"].get(r.kind, t["kinds"]["unknown"]),
            "population": t["populations"].get(r.population, r.population),
            "state": r.state, "state_label": t["states"].get(r.state, r.state), "people": people,
            "sender": r.sender_name or r.sender, "subject": r.subject, "deadline": c.when(r.deadline),
            "left": left, "overdue": overdue, "problems": _problems(c, r, people_with_problems)}


@needs(Permission.REQUESTS)
async def queue_page(request: web.Request) -> web.Response:
    """GET /: the open requests, overdue and oldest first, page by page, with filters state / kind / overdue /
    free text; a request number typed in the search box shows that request whatever its state or age."""
    c = console(request)
    stamp = await request.app[STAMPS].get("queue", fresh=True)  # before reading: a later change reloads
    q = request.query
    state, kind, text = q.get("state", ""), q.get("kind", ""), q.get("q", "").strip()[:200]
    overdue_only = q.get("overdue") == "1"
    try:
        page = int(q.get("page", "1"))
    except ValueError:
        page = 1
    now = c.clock.now()
    result = await request_queue([state] if state in c.t["states"] else OPEN,
                                 kind=kind if kind in c.t["kinds"] else "", overdue_at=now if overdue_only else None,
                                 text=text, page=page, per_page=QUEUE_PAGE)
    shown = ([result.found] if result.found is not None and result.page == 1 else []) + result.requests
    flagged: dict[int, int] = {}
    ids = [r.id for r in shown]
    for request_id, problems in await RequestPerson.filter(request_id__in=ids).values_list("request_id", "problems"):
        if problems:
            flagged[request_id] = flagged.get(request_id, 0) + 1
    rows = [_row(c, r, result.people.get(r.id, 0), now, flagged.get(r.id, 0)) for r in shown]
    sla = await sla_glance(c.settings, now)
    filters = {"state": state, "kind": kind, "q": text, "overdue": overdue_only}
    link = {k: v for k, v in {**filters, "overdue": "1" if overdue_only else ""}.items() if v}
    return render(request, "queue.html.j2", rows=rows, stamp=stamp, scope="queue", live_url=request.path_qs,
                  sla=sla, sla_scale=SLA_BAR_HEIGHT / sla.tallest,
                  sla_words=SLA_WORDS["en" if c.lang == "en" else "vi"],
                  filters=filters, total=result.total, page=result.page, pages=result.pages, link=link,
                  found=result.found.id if result.found is not None else None,
                  states=[(s, c.t["states"][s]) for s in c.t["states"]],
                  kinds=list(c.t["kinds"].items()))


@needs(Permission.REGISTRY)
async def registry_page(request: web.Request) -> web.Response:
    """GET /registry: search the staff/student registry by name (diacritics optional) or id, paged."""
    c = console(request)
    q = request.query
    text, population = q.get("q", "").strip()[:200], q.get("population", "")
    try:
        page = max(1, int(q.get("page", "1")))
    except ValueError:
        page = 1
    query = RegistryEntry.all()
    if population in c.t["populations"]:
        query = query.filter(population=population)
    if text:
        query = query.filter(Q(name_key__contains=fold(text)) | Q(person_id__icontains=text))
    total = await query.count()
    entries = await query.order_by("name_key", "id").offset((page - 1) * REGISTRY_PAGE).limit(REGISTRY_PAGE)
    pages = max(1, -(-total // REGISTRY_PAGE))
    rows = [{"person_id": e.person_id, "full_name": e.full_name,
             "population": c.t["populations"].get(e.population, e.population),
             "dob": e.date_of_birth.strftime("%d/%m/%Y") if e.date_of_birth else "",
             "unit": e.class_name or e.unit, "cohort": e.cohort, "email": e.email} for e in entries]
    return render(request, "registry.html.j2", rows=rows, total=total, page=page, pages=pages,
                  filters={"q": text, "population": population},
                  populations=list(c.t["populations"].items()))


@needs(OPEN_PAGE)
async def whoami_page(request: web.Request) -> web.Response:
    """GET /whoami: the signed-in staff member, roles and session."""
    c = console(request)
    actor, session = request[ACTOR], request[SESSION]
    staff = await Staff.get_or_none(id=actor.staff_id)
    return render(request, "whoami.html.j2", staff=staff, session_until=c.when(session.expires_at),
                  roles=[c.t["roles_names"].get(r.value, r.value) for r in sorted(actor.roles, key=lambda r: r.value)],
                  link_code=request.get("link_code", ""), link_surface=request.get("link_surface", ""),
                  link_minutes=int(c.settings.chat.link_code_minutes))


def add_routes(app: web.Application) -> None:
    """Register the queue, registry and whoami pages."""
    app.router.add_get("/", queue_page)
    app.router.add_get("/registry", registry_page)
    app.router.add_get("/whoami", whoami_page)
