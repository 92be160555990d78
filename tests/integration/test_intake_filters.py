"""Intake is an ordered list of small named filters: the order is written in one place, each filter that
finishes a mail says so in the mail's audit entry, and a pipeline given another list runs that list."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edudesk.core.intake.filters import FILTERS, CreateRequest, MailContext, Thread
from edudesk.core.intake.models import InboundMail
from edudesk.core.models import AuditEvent
from edudesk.core.requests.models import Request
from tests.mails import student_form_mail

pytestmark = pytest.mark.db
FIXTURES = Path(__file__).parent.parent / "fixtures" / "mail"


def test_the_filters_run_in_the_documented_order_and_only_the_last_ones_decide() -> None:
    assert [f.name for f in FILTERS] == ["oversize", "unreadable", "automatic", "spam", "thread", "flood",
                                         "create_request"]
    deciding = [f.decides for f in FILTERS]
    first = deciding.index(True)
    assert all(deciding[first:]) and not any(deciding[:first]), "the decision lock covers a tail of the list"


async def _process(app: Any, raw: bytes) -> tuple[str | None, InboundMail]:
    stored = await app.ledger.store(raw, source="cli")
    outcome = await app.pipeline.process(stored.mail_id)
    return outcome, await InboundMail.get(id=stored.mail_id)


async def test_each_finished_mail_names_the_filter_that_finished_it(app_factory: Any) -> None:
    app = await app_factory(inline_analysis=True)
    outcome, row = await _process(app, student_form_mail(message_id="<first@gmail.com>"))
    assert outcome == row.outcome == "request_created"
    created = await AuditEvent.get(mail_id=row.id, action="mail_request_created")
    assert created.detail["filter"] == "create_request"

    bounce = (FIXTURES / "dsn_bounce_multipart_report.eml").read_bytes()
    outcome, row = await _process(app, bounce)
    assert row.state == "ignored" and outcome == row.outcome
    assert (await AuditEvent.get(mail_id=row.id)).detail["filter"] == "automatic"
    assert await app.pipeline.process(row.id) is None, "a mail already processed is left alone"


class Nothing(CreateRequest):
    """A last filter that never finishes a mail (a list that forgets to create requests)."""

    name = "nothing"

    async def run(self, ctx: MailContext) -> str | None:
        return None


async def test_a_pipeline_runs_the_list_it_is_given(app_factory: Any) -> None:
    app = await app_factory(inline_analysis=True)
    app.pipeline.filters = (*FILTERS[:2], Thread(), Nothing())  # no automatic check, no request made
    outcome, row = await _process(app, student_form_mail(message_id="<second@gmail.com>"))
    assert outcome is None and row.state == "pending"
    assert not await Request.exists()
