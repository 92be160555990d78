"""Teachers look before they sign: each record of a turn opens its current PDF inline, and the Ký ngay form names
the records and the version of each it was shown (core/signing/shown.py refuses a Ký ngay when one changed)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from edudesk.bot.web.render import ACTOR, console, needs, render
from edudesk.core.errors import NotAllowed, NotFound
from edudesk.core.people.access import Permission
from edudesk.core.signing.shown import record_to_view, signable

_FILENAME = re.compile(r"[^A-Za-z0-9_-]+")


async def turn_records(teacher_id: int, class_id: int, stage: int) -> list[dict[str, Any]]:
    """The records a turn's Ký ngay signs, each with its version and the address of its PDF in that version."""
    return [{"id": s.record_id, "version": s.version, "code": s.student_code, "name": s.student_name,
             "pdf": f"/records/{s.record_id}/pdf?v={s.version}"}
            for s in await signable(teacher_id, class_id, stage)]


@needs(Permission.SIGN_IN)  # its signers', the leadership's and admins' only: checked by record_to_view
async def record_pdf(request: web.Request) -> web.StreamResponse:
    """GET /records/{id}/pdf?v=N: the record's stored PDF, shown inline; 409 when the page that linked it showed
    another version (the teacher reloads and sees what Ký ngay would sign)."""
    c = console(request)
    if c.records is None:
        raise NotFound(c.t["rec"]["disabled"])
    try:
        record = await record_to_view(request[ACTOR], int(request.match_info["id"]), c.clock)
    except NotAllowed:
        return render(request, "error.html.j2", status=403, title=c.t["refused_title"],
                      message=c.t["rec"]["pdf_refused"])
    shown = request.query.get("v", "")
    if shown.isdecimal() and int(shown) != record.version:
        return render(request, "error.html.j2", status=409, title=c.t["error_title"],
                      message=c.t["rec"]["pdf_changed"])
    name = _FILENAME.sub("-", record.student_code)[:60] or str(record.id)
    return web.Response(body=bytes(record.pdf), content_type="application/pdf",
                        headers={"Content-Disposition": f'inline; filename="hoc-ba-{name}.pdf"',
                                 "X-Record-Version": str(record.version)})


def add_routes(app: web.Application) -> None:
    """Register the record PDF page."""
    app.router.add_get(r"/records/{id:\d{1,18}}/pdf", record_pdf)
