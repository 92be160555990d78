"""Run a kept raw mail through intake again (`edudesk mail reprocess`): never a second request."""

from __future__ import annotations

from tortoise.transactions import in_transaction

from edudesk.core.chats.notify import enqueue_cards
from edudesk.core.errors import EdudeskError, NotFound
from edudesk.core.intake.checks import check_request
from edudesk.core.intake.domain import ExtractedRequest, Kind, Population
from edudesk.core.intake.models import InboundMail
from edudesk.core.intake.pipeline import IntakePipeline, Raced, count_problems
from edudesk.core.models import AuditEvent
from edudesk.core.requests.models import Request, RequestPerson
from edudesk.core.requests.workflow import State


async def reprocess_mail(pipeline: IntakePipeline, mail_id: int) -> str:
    """Run a kept raw mail through intake again: a mail with a request has that request re-checked
    (never a second request); a quarantined or ignored mail is processed as if new."""
    row = await InboundMail.get_or_none(id=mail_id)
    if row is None:
        raise NotFound(f"Không có thư số {mail_id}.")
    if row.purged_at is not None:
        raise EdudeskError(f"Thư số {mail_id} đã quá thời hạn lưu ([retention]): chỉ còn phần đầu thư, không xử lý "
                           f"lại được.", code="mail_purged")
    now = pipeline.clock.now()
    if row.request_id is None:  # type: ignore[attr-defined]
        await InboundMail.filter(id=mail_id).update(state="pending", outcome="")
        await AuditEvent.create(at=now, actor="cli", action="mail_reprocess", mail_id=mail_id,
                                detail={"previous": row.outcome})
        await pipeline.process(mail_id)
        row = await InboundMail.get(id=mail_id)
        return row.outcome
    request = await Request.get(id=row.request_id)  # type: ignore[attr-defined]
    if State(request.state) not in (State.RECEIVED, State.NEED_INFO):
        # Once the office has decided, the people a decision was about are not swapped behind its back.
        return f"unchanged (YC-{request.id} is {request.state})"
    analysis = await pipeline.analyser.analyse(bytes(row.content))
    if analysis.extracted is None or not analysis.extracted.persons:
        return "unchanged"
    extracted = analysis.extracted
    extracted = ExtractedRequest(Kind(request.kind), Population(request.population), extracted.persons,
                                 extracted.source, extracted.problems, extracted.unit)
    checked = await check_request(extracted, analysis.mail, pipeline.settings, exclude_request=request.id)
    try:
        async with in_transaction() as conn:
            if not await Request.filter(id=request.id, version=request.version).using_db(conn).update(
                    problems=[p.to_json() for p in checked.problems], flags=checked.flags,
                    auth_results=checked.auth_results, updated_at=now, version=request.version + 1):
                raise Raced
            await RequestPerson.filter(request_id=request.id).using_db(conn).delete()
            await pipeline._save_persons(conn, request.id, checked)
            await AuditEvent.create(at=now, actor="cli", action="request_rechecked", request_id=request.id,
                                    mail_id=mail_id, detail={"problems": count_problems(checked)}, using_db=conn)
            await enqueue_cards(conn, pipeline.queue, request.id, request.version + 1, State(request.state))
    except Raced:
        return "unchanged (the request changed meanwhile; run it again)"
    return "rechecked"
