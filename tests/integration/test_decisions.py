"""Two replicas deciding at once on PostgreSQL: no address is offered twice, no duplicate goes unseen."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from edudesk.core.intake.pipeline import IntakePipeline
from edudesk.core.requests.models import RequestPerson
from edudesk.mailer.analyse import headers_only
from tests.conftest import PG_URL
from tests.mails import student_form_mail

pytestmark = [pytest.mark.db,
              pytest.mark.skipif(not PG_URL, reason="replicas share a PostgreSQL database; SQLite has one writer")]


async def test_two_replicas_processing_namesakes_at_once_offer_different_addresses(app_factory: Any) -> None:
    app = await app_factory(inline_analysis=True)
    # A second replica: its own pipeline (its own in-process lock), the same database.
    other = IntakePipeline(app.settings, app.clock, app.queue, app.analyser, headers_only)
    for round_ in range(5):
        name = ["Nguyễn Văn An", "Trần Thị Bình", "Lê Minh Châu", "Phạm Quốc Dũng", "Hoàng Thu Hà"][round_]
        ids = []
        for i in range(2):
            raw = student_form_mail(name=name, sid=f"2021{round_}{i:03d}", message_id=f"<rep-{round_}-{i}@gmail.com>")
            ids.append((await app.ledger.store(raw, source="smtp")).mail_id)
        await asyncio.gather(app.pipeline.process(ids[0]), other.process(ids[1]))
        addresses = sorted(await RequestPerson.filter(full_name=name).values_list("proposed_address", flat=True))
        assert len(addresses) == 2 and addresses[0] != addresses[1], addresses
