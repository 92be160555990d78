"""School records (học bạ số) in the web console: my turns and Ký ngay, who is blocking and Nhắc tất cả, the
admin's classes, returns and credentials, a class's list with Báo sai sót and credential registration (checking
a record PDF's signatures: records_verify.py). Handlers parse the form and call one service; the services check
roles."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from tortoise.functions import Count

from edudesk.bot.web.records_look import add_routes as add_look
from edudesk.bot.web.records_look import turn_records
from edudesk.bot.web.records_pin import pin_labels
from edudesk.bot.web.records_verify import add_routes as add_verify
from edudesk.bot.web.render import ACTOR, Console, console, needs, redirect, render
from edudesk.core.errors import EdudeskError, NotFound
from edudesk.core.people.access import Permission
from edudesk.core.people.staff import Actor, Role
from edudesk.core.signing.minutes_notice import minutes_items
from edudesk.core.signing.models import (
    ClassState,
    RecordReturn,
    SchoolClass,
    SchoolRecord,
    SignatureStep,
    SignerCredential,
    SignSession,
    Teacher,
)
from edudesk.core.signing.pin import check_new_pin, needs_pin
from edudesk.core.signing.quiet import in_quiet_hours, parse_quiet_hours, quiet_until
from edudesk.core.signing.service import RecordService
from edudesk.core.signing.shown import parse_shown
from edudesk.core.signing.turns import role_text
from edudesk.core.signing.usecases import may_follow_progress, open_turn_count, signer_for
from edudesk.core.signing.usecases import my_turns as turns_of

ID = r"{id:\d{1,18}}"


def service(c: Console) -> RecordService:
    """The records service, or a clear error when the console runs without it."""
    if c.records is None:
        raise NotFound(c.t["rec"]["disabled"])
    return c.records


TURNS = "records_turns"  # request key: how many records wait for the signed-in teacher (the nav's badge)


@web.middleware
async def turns_badge(request: web.Request, handler: Any) -> web.StreamResponse:
    """For a signed-in teacher's pages: the count of records waiting for their signature, shown in the nav
    (the console's side of the "sign now" message)."""
    actor = request.get(ACTOR)
    if request.method == "GET" and actor is not None and console(request).records is not None:
        if await signer_for(actor) is not None:
            request[TURNS] = await open_turn_count(actor)
    return await handler(request)


def _int(form: Any, name: str) -> int:
    return int(str(form.get(name, "")))


async def my_turns(c: Console, actor: Actor, teacher: Teacher, now: datetime) -> list[dict[str, Any]]:
    """The teacher's steps still to sign, per class and stage: open, being signed, not yet their turn."""
    rows = []
    for t in await turns_of(actor, waiting=True):
        left, overdue = c.time_left(t.deadline, now) if t.deadline else ("", False)
        rows.append({"class_id": t.klass.id, "class": t.klass.name, "year": t.klass.year, "stage": t.stage,
                     "role": await role_text(teacher.id, t.klass.id, t.stage, c.lang), "open": t.open,
                     "in_session": t.in_session, "waiting": t.waiting,
                     "deadline": c.when(t.deadline) if t.deadline else "", "left": left, "overdue": overdue,
                     "records": await turn_records(teacher.id, t.klass.id, t.stage) if t.open else []})
        if t.klass.state == ClassState.MINUTES:  # biên bản: which minutes, whose record, why (as the notice says)
            rows[-1]["minutes"] = await minutes_items(c.lang, [x["id"] for x in rows[-1]["records"]])
    return rows


async def admin_view(c: Console) -> dict[str, Any]:
    """Classes with their counts, open returns and pending credentials with their pre-flight findings."""
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    for row in await SchoolRecord.annotate(n=Count("id")).group_by("klass_id", "state").values("klass_id", "state",
                                                                                                 "n"):
        counts[row["klass_id"]][row["state"]] = row["n"]
    classes = [{"id": k.id, "name": k.name, "year": k.year, "state": k.state,
                "total": sum(counts[k.id].values()), "signed": counts[k.id].get("signed", 0)}
               for k in await SchoolClass.all().order_by("-year", "name")]
    returns = await RecordReturn.filter(state="open").order_by("id").values(
        "id", "actor", "reason", "created_at", "record__student_code", "record__student_name", "record__klass_id")
    for r in returns:
        r["at"] = c.when(r["created_at"])
    credentials = []
    desk = service(c).credentials
    for cred in await SignerCredential.filter(state="pending", teacher_id__isnull=False).order_by("id"):
        teacher = await Teacher.get(id=cred.teacher_id)
        findings = desk.findings(cred, teacher) if desk is not None else []
        credentials.append({"id": cred.id, "teacher": teacher.name, "code": teacher.code, "kind": cred.label,
                            "subject": cred.subject_name, "expires": c.when(cred.not_after),
                            "findings": [f.text for f in findings]})
    return {"classes": classes, "returns": returns, "credentials": credentials}


def _reminder_flash(c: Console, query: Any) -> str:
    try:
        n, at = int(query.get("reminded", "")), datetime.fromtimestamp(int(query.get("at", "")), UTC)
    except (ValueError, OverflowError, OSError):
        return ""
    return str(c.t["rec"]["reminded"]).format(n=n, at=c.when(at))


@needs(Permission.SIGN_IN)  # each signing role's own work; admin-only parts are checked inside
async def records_page(request: web.Request, *, error: str = "") -> web.Response:
    """GET /records: my turns (teachers), who is blocking (leaders), classes, returns, credentials (admins)."""
    c = console(request)
    service(c)
    actor, now = request[ACTOR], c.clock.now()
    teacher = await signer_for(actor)
    context: dict[str, Any] = {"teacher": teacher, "turns": [], "credential": None, "session": None}
    if teacher is not None:
        context["turns"] = await my_turns(c, actor, teacher, now)
        context["credential"] = await SignerCredential.filter(teacher_id=teacher.id).exclude(
            state__in=["rejected", "revoked"]).order_by("-id").first()
        approved = await SignerCredential.filter(teacher_id=teacher.id, state="approved").order_by("-id").first()
        context["needs_pin"] = needs_pin(approved)
        if request.query.get("session", "").isdigit():
            context["session"] = await SignSession.get_or_none(id=int(request.query["session"]),
                                                               teacher_id=teacher.id)
    leader = may_follow_progress(actor)
    if leader:
        window = parse_quiet_hours(c.settings.records.quiet_hours)
        quiet = in_quiet_hours(now, window, c.settings.general.timezone)
        context.update(blocking=[b.text() for b in await service(c).progress(actor)],
                       quiet_hours=c.settings.records.quiet_hours,
                       quiet_until=c.when(quiet_until(now, window, c.settings.general.timezone)) if quiet else "")
    if actor.has(Role.ADMIN):
        context.update(await admin_view(c))
        from edudesk.bot.web.records_portal import portal_view  # imports this module: here, not on top

        context.update(await portal_view(c))  # issued classes and "Gửi lên hệ thống"
    return render(request, "records.html.j2", error=error, flash=_reminder_flash(c, request.query),
                  leader=leader, admin=actor.has(Role.ADMIN), p=pin_labels(c), **context)


async def _post(request: web.Request, action: Any, back: str = "/records") -> web.Response:
    """Run one service call for a POST: 303 back on success; the domain error shown on the page otherwise."""
    c = console(request)
    form = await request.post()
    try:
        location = await action(service(c), request[ACTOR], form)
    except (ValueError, EdudeskError) as exc:
        message = exc.in_words(console(request).lang) if isinstance(exc, EdudeskError) else c.t["bad_form"]
        if back.startswith("/records/classes/"):
            return await class_page(request, error=message)
        return await records_page(request, error=message)
    return redirect(request, location or back, flash="done")


@needs(Permission.SIGN_IN)  # each signing role's own work; admin-only parts are checked inside
async def sign_now(request: web.Request) -> web.Response:
    """POST /records/sign: Ký ngay for one class and stage, with the teacher's PIN when the server holds the key
    (the PIN goes to the service only: never into a page, a log line or the audit trail)."""
    async def act(records: RecordService, actor: Actor, form: Any) -> str:
        pin = str(form["pin"])[:100] if "pin" in form else None
        shown = parse_shown(form.getall("record")) if "record" in form else None  # what the page showed
        session = await records.start_signing(actor, _int(form, "class_id"), _int(form, "stage"), pin=pin,
                                              shown=shown)
        return f"/records?session={session.id}"
    return await _post(request, act)


@needs(Permission.SIGN_IN)  # each signing role's own work; admin-only parts are checked inside
async def remind_all(request: web.Request) -> web.Response:
    """POST /records/remind: a leader reminds every teacher still owing signatures (after quiet hours)."""
    async def act(records: RecordService, actor: Actor, form: Any) -> str:
        sent, when = await records.remind_all(actor)
        return f"/records?reminded={sent}&at={int(when.timestamp())}"
    return await _post(request, act)


@needs(Permission.SIGN_IN)  # each signing role's own work; admin-only parts are checked inside
async def confirm(request: web.Request) -> web.Response:
    """POST /records/classes/{id}/confirm: the admin confirms a complete class."""
    async def act(records: RecordService, actor: Actor, form: Any) -> str:
        await records.confirm_class(actor, int(request.match_info["id"]))
        return ""
    return await _post(request, act)


@needs(Permission.SIGN_IN)  # each signing role's own work; admin-only parts are checked inside
async def decide_return(request: web.Request) -> web.Response:
    """POST /records/returns/{id}: the admin approves (approve=1) or refuses a Báo sai sót."""
    async def act(records: RecordService, actor: Actor, form: Any) -> str:
        await records.decide_return(actor, int(request.match_info["id"]), _int(form, "approve") == 1)
        return ""
    return await _post(request, act)


@needs(Permission.SIGN_IN)  # each signing role's own work; admin-only parts are checked inside
async def decide_credential(request: web.Request) -> web.Response:
    """POST /records/credentials/{id}: the admin approves (approve=1) or rejects a credential."""
    async def act(records: RecordService, actor: Actor, form: Any) -> str:
        await records.decide_credential(actor, int(request.match_info["id"]), _int(form, "approve") == 1)
        return ""
    return await _post(request, act)


@needs(Permission.SIGN_IN)  # each signing role's own work; admin-only parts are checked inside
async def class_page(request: web.Request, *, error: str = "") -> web.Response:
    """GET /records/classes/{id}?stage=N: the class's records, my step in each, Báo sai sót per record."""
    c = console(request)
    actor = request[ACTOR]
    class_id = int(request.match_info["id"])
    klass, teacher = await service(c).class_for(actor, class_id, "rec_list")  # students' personal data
    stage = int(request.query["stage"]) if request.query.get("stage", "").isdigit() else 0
    mine: dict[int, str] = {}
    if teacher is not None:
        query = SignatureStep.filter(teacher_id=teacher.id, record__klass_id=class_id)
        for s in await (query.filter(stage=stage) if stage else query).values("record_id", "state"):
            mine[s["record_id"]] = s["state"]
    records = await SchoolRecord.filter(klass_id=class_id).order_by("student_code").values(
        "id", "student_code", "student_name", "stage", "signatures", "state")
    return render(request, "records_class.html.j2", error=error, klass=klass, records=records, mine=mine,
                  stage=stage, can_report=actor.has(Role.TEACHER, Role.LEADER))


@needs(Permission.SIGN_IN)  # each signing role's own work; admin-only parts are checked inside
async def report_error(request: web.Request) -> web.Response:
    """POST /records/classes/{id}/return: Báo sai sót for one record, with the reason."""
    class_id = int(request.match_info["id"])
    stage = str(request.query.get("stage", ""))
    back = f"/records/classes/{class_id}" + (f"?stage={stage}" if stage.isdigit() else "")

    async def act(records: RecordService, actor: Actor, form: Any) -> str:
        record_id = _int(form, "record_id")
        if not await SchoolRecord.filter(id=record_id, klass_id=class_id).exists():
            raise NotFound("Không có học bạ này trong lớp.")
        await records.return_record(actor, record_id, str(form.get("reason", "")))
        return back
    return await _post(request, act, back)


@needs(Permission.SIGN_IN)  # each signing role's own work; admin-only parts are checked inside
async def credentials_page(request: web.Request, *, error: str = "", flash: str = "",
                           status: int = 200) -> web.Response:
    """GET /records/credentials: the teacher's credentials and the registration form."""
    c = console(request)
    service(c)
    teacher = await signer_for(request[ACTOR])
    rows = []
    if teacher is not None:
        rows = await SignerCredential.filter(teacher_id=teacher.id).order_by("-id")
    items = [{"id": r.id, "kind": r.label or r.kind, "subject": r.subject_name, "expires": c.when(r.not_after),
              "state": r.state, "at": c.when(r.created_at),
              "pin_missing": r.kind == "pkcs12" and "pkcs12" in (r.config or {}) and r.state in ("pending", "approved")}
             for r in rows]
    return render(request, "records_credentials.html.j2", status=status, error=error, flash=flash,
                  teacher=teacher, credentials=items, smartca=bool(c.settings.records.smartca.url), p=pin_labels(c))


@needs(Permission.SIGN_IN)  # each signing role's own work; admin-only parts are checked inside
async def register_credential(request: web.Request) -> web.Response:
    """POST /records/credentials: register a PKCS#12 file (with its passphrase) or a VNPT SmartCA account."""
    c = console(request)
    records, actor = service(c), request[ACTOR]
    form = await request.post()
    kind = str(form.get("kind", ""))
    try:
        teacher = await records.teacher_of(actor, "rec_cred")
        if records.credentials is None:
            raise NotFound(c.t["rec"]["disabled"])
        upload = form.get("pkcs12")
        data = upload.file.read() if isinstance(upload, web.FileField) else b""
        if kind == "pkcs12" and not data:
            raise EdudeskError(c.t["rec"]["no_file"], code="cred_missing")
        pin = ""
        if kind == "pkcs12":
            pin = check_new_pin(str(form.get("pin", ""))[:100], str(form.get("pin_repeat", ""))[:100])
        # The passphrase and the PIN go to the sealed store only: never into a page, a log line or the audit trail.
        await records.credentials.register(teacher, kind, actor=actor, pkcs12=data,
                                           passphrase=str(form.get("passphrase", "")), pin=pin,
                                           user_id=str(form.get("user_id", "")).strip()[:100])
    except EdudeskError as exc:
        return await credentials_page(request, error=exc.in_words(console(request).lang))
    return redirect(request, "/records/credentials", flash="done")


@needs(Permission.SIGN_IN)  # each signing role's own work; admin-only parts are checked inside
async def set_pin(request: web.Request) -> web.Response:
    """POST /records/credentials/{id}/pin: the teacher seals a credential registered before PINs under a PIN."""
    c = console(request)
    records, actor = service(c), request[ACTOR]
    form = await request.post()
    try:
        teacher = await records.teacher_of(actor, "rec_pin")
        if records.credentials is None:
            raise NotFound(c.t["rec"]["disabled"])
        await records.credentials.pins.set_pin(actor, teacher, int(request.match_info["id"]),
                                               str(form.get("pin", ""))[:100], str(form.get("pin_repeat", ""))[:100])
    except EdudeskError as exc:
        return await credentials_page(request, error=exc.in_words(console(request).lang))
    return await credentials_page(request, flash=pin_labels(c)["pin_set"])


def add_routes(app: web.Application) -> None:
    """Register the records pages (and let only the verify upload exceed the body limit)."""
    add_verify(app)  # /records/verify; its upload middleware goes before the guard, which reads the form for CSRF
    app.middlewares.append(turns_badge)  # after the guard, which finds the actor
    app.router.add_get("/records", records_page)
    app.router.add_post("/records/sign", sign_now)
    app.router.add_post("/records/remind", remind_all)
    app.router.add_post(f"/records/returns/{ID}", decide_return)
    app.router.add_get("/records/credentials", credentials_page)
    app.router.add_post("/records/credentials", register_credential)
    app.router.add_post(f"/records/credentials/{ID}", decide_credential)
    app.router.add_post(f"/records/credentials/{ID}/pin", set_pin)
    app.router.add_get(f"/records/classes/{ID}", class_page)
    app.router.add_post(f"/records/classes/{ID}/confirm", confirm)
    app.router.add_post(f"/records/classes/{ID}/return", report_error)
    add_look(app)  # /records/{id}/pdf: a record's PDF, inline
    from edudesk.bot.web.records_progress import add_routes as add_progress  # imports this module: here, not on top

    add_progress(app)  # /records/progress: the vice principal's dashboard
    from edudesk.bot.web.records_portal import add_routes as add_portal

    add_portal(app)  # /records/classes/{id}/send and /sent: the receiving portal
    from edudesk.bot.web.records_life import add_routes as add_life

    add_life(app)  # /records/life: corrections, withdrawals, adjustments, archived revisions
