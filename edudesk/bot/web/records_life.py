"""The life of a record after signing in the web console (admins only), on /records/life: the records waiting for
their corrected PDF after an approved Báo sai sót (upload), the minutes of withdrawals and adjustments waiting for
the leadership, the form that starts one, and the archived revisions (each PDF downloadable, still verifiable).
Handlers parse the form and call one use case (core/signing/correction.py, changes.py), which checks the role."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from tortoise.functions import Count

from edudesk.bot.web.render import ACTOR, Console, console, needs, redirect, render
from edudesk.core.errors import EdudeskError, NotFound
from edudesk.core.people.access import Permission
from edudesk.core.people.staff import Role
from edudesk.core.signing.changes import start_change
from edudesk.core.signing.correction import MAX_PDF, replace_record
from edudesk.core.signing.lifemodels import ChangeKind, ChangeState, RecordChange, RecordRevision
from edudesk.core.signing.models import (
    ClassState,
    RecordReturn,
    RecordState,
    ReturnState,
    SchoolClass,
    SchoolRecord,
    SignatureStep,
)
from edudesk.core.signing.revisions import revision_file
from edudesk.core.words import words

ID = r"{id:\d{1,18}}"
SHOWN = 50  # archived revisions listed (newest first)


@web.middleware
async def life_uploads(request: web.Request, handler: Any) -> web.StreamResponse:
    """The corrected record's upload may be larger than the console's 256 KB limit (up to MAX_PDF)."""
    if request.method == "POST" and request.path.startswith("/records/life/"):
        request = request.clone(client_max_size=MAX_PDF + 1024 * 1024)
    return await handler(request)


def _refused(request: web.Request) -> web.Response | None:
    """The page for someone who is not an admin (the use cases refuse them too)."""
    c = console(request)
    if c.records is None:
        raise NotFound(c.t["rec"]["disabled"])
    if request[ACTOR].has(Role.ADMIN):
        return None
    return render(request, "error.html.j2", status=403, title=c.t["refused_title"],
                  message=c.t["rec"]["life"]["only_admin"])


async def _view(c: Console) -> dict[str, Any]:
    """What the page shows: corrections awaited, minutes being signed, classes for the form, archived revisions."""
    corrections = []
    for r in await SchoolRecord.filter(state=RecordState.CORRECTING).order_by("klass_id", "student_code") \
            .prefetch_related("klass"):
        ret = await RecordReturn.filter(record_id=r.id, state=ReturnState.APPROVED).order_by("-id").first()
        corrections.append({"id": r.id, "code": r.student_code, "name": r.student_name, "class": r.klass.name,
                            "year": r.klass.year, "reason": ret.reason if ret else "", "by": ret.actor if ret else ""})
    changes = []
    for ch in await RecordChange.filter(state=ChangeState.MINUTES).order_by("id").prefetch_related("record__klass"):
        steps = await SignatureStep.filter(record_id=ch.minutes_id).annotate(n=Count("id")).group_by(
            "state").values_list("state", "n")
        counts = {str(state): int(n) for state, n in steps}
        changes.append({"id": ch.id, "number": ch.number, "kind": ch.kind, "reason": ch.reason,
                        "code": ch.record.student_code, "name": ch.record.student_name,
                        "class": ch.record.klass.name, "year": ch.record.klass.year, "minutes": ch.minutes_id,
                        "signed": counts.get("signed", 0), "total": sum(counts.values()), "at": c.when(ch.created_at)})
    classes = await SchoolClass.exclude(state=ClassState.MINUTES).order_by("-year", "name").values("id", "name", "year")
    revisions = []
    for rev in await RecordRevision.all().order_by("-id").limit(SHOWN).prefetch_related("record__klass"):
        revisions.append({"id": rev.id, "n": rev.number + 1, "kind": rev.kind, "reason": rev.reason,
                          "sha": rev.sha256, "signatures": rev.signatures, "by": rev.actor,
                          "at": c.when(rev.created_at),
                          "code": rev.record.student_code, "name": rev.record.student_name,
                          "class": rev.record.klass.name, "year": rev.record.klass.year})
    return {"corrections": corrections, "changes": changes, "classes": classes, "revisions": revisions,
            "kinds": words(c.lang).group("life.kind")}


@needs(Permission.SIGN_IN)  # admins only: checked here and by the use cases
async def life_page(request: web.Request, *, error: str = "") -> web.Response:
    """GET /records/life: corrections, minutes, the withdrawal/adjustment form, archived revisions."""
    if (refused := _refused(request)) is not None:
        return refused
    return render(request, "records_life.html.j2", error=error, max_mb=MAX_PDF // (1024 * 1024),
                  **await _view(console(request)))


async def _upload(form: Any) -> bytes:
    upload = form.get("pdf")
    return upload.file.read() if isinstance(upload, web.FileField) else b""


@needs(Permission.SIGN_IN)  # admins only: checked by the use case
async def replace(request: web.Request) -> web.Response:
    """POST /records/life/{id}/replace: the corrected PDF of a record waiting for it."""
    c = console(request)
    if c.records is None:
        raise NotFound(c.t["rec"]["disabled"])
    form = await request.post()
    try:
        await replace_record(c.records, request[ACTOR], int(request.match_info["id"]), await _upload(form))
    except EdudeskError as exc:
        return await life_page(request, error=exc.in_words(c.lang))
    return redirect(request, "/records/life#corrections", flash="done")


@needs(Permission.SIGN_IN)  # admins only: checked by the use case
async def change(request: web.Request) -> web.Response:
    """POST /records/life/changes: start a withdrawal or an adjustment (class, student code, reason, PDF)."""
    c = console(request)
    if c.records is None:
        raise NotFound(c.t["rec"]["disabled"])
    form = await request.post()
    try:
        kind = ChangeKind(str(form.get("kind", "")))
        class_id = int(str(form.get("class_id", "")))
        code = str(form.get("code", "")).strip()[:40]
        record = await SchoolRecord.get_or_none(klass_id=class_id, student_code=code)
        if record is None:
            raise NotFound(f"Không có học bạ của học sinh mã {code} ở lớp này.")
        pdf = await _upload(form) if kind == ChangeKind.ADJUSTMENT else None
        await start_change(c.records, request[ACTOR], record.id, kind, str(form.get("reason", "")), pdf)
    except ValueError:
        return await life_page(request, error=c.t["bad_form"])
    except EdudeskError as exc:
        return await life_page(request, error=exc.in_words(c.lang))
    return redirect(request, "/records/life#changes", flash="done")


@needs(Permission.SIGN_IN)  # admins only: checked here
async def revision_pdf(request: web.Request) -> web.StreamResponse:
    """GET /records/life/revisions/{id}/pdf: an archived revision exactly as it was (to verify it anywhere)."""
    if (refused := _refused(request)) is not None:
        return refused
    rev = await RecordRevision.get_or_none(id=int(request.match_info["id"])).prefetch_related("record")
    if rev is None:
        raise web.HTTPNotFound()
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", revision_file(rev.record, rev.number).split("/")[-1])
    return web.Response(body=bytes(rev.pdf), content_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


def add_routes(app: web.Application) -> None:
    """Register /records/life and its forms (and let their uploads exceed the body limit)."""
    app.middlewares.insert(0, life_uploads)  # before the guard, which reads the form for its CSRF check
    app.router.add_get("/records/life", life_page)
    app.router.add_post(f"/records/life/{ID}/replace", replace)
    app.router.add_post("/records/life/changes", change)
    app.router.add_get(f"/records/life/revisions/{ID}/pdf", revision_pdf)
