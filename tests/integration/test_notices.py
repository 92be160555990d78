"""Staff notices by e-mail are not automatic replies: never dropped by the reply cap, paced, and reported when lost.

Real job worker, database and SMTP relay (aiosmtpd); notices go the way the service sends them: a chat notice
for a teacher who chose e-mail (`enqueue_notice` -> chat hub -> `chat_notice` mail).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from tortoise.transactions import in_transaction

from edudesk.app import App
from edudesk.core.chats.notify import enqueue_notice
from edudesk.core.models import AuditEvent, Job
from edudesk.core.people.models import Staff
from edudesk.core.ports import FakeClock
from edudesk.core.requests.mailqueue import NOTICES_PER_MINUTE
from edudesk.core.requests.models import OutgoingMail
from tests.servers.smtp_sink import SmtpSink

pytestmark = pytest.mark.db
TEACHER = "hoa.nguyenthi@hust.edu.vn"


async def teacher(app: App) -> Staff:
    """A teacher who takes her notices by e-mail."""
    return await Staff.create(name="Nguyễn Thị Hoà", email=TEACHER, roles=["signer"], notify_via="email",
                              created_at=app.clock.now())


async def notices(app: App, staff: Staff, count: int) -> None:
    """`count` notices to the teacher (turns to sign, returned records...), as the service queues them."""
    for i in range(count):
        async with in_transaction() as conn:
            await enqueue_notice(conn, app.queue, f"turn:{i}", f"staff:{staff.id}",
                                 f"Đến lượt Anh/Chị ký học bạ lớp 10A{i}.")
    app.queue.wake()


async def test_ten_notices_to_one_teacher_in_a_minute_all_arrive(app_factory: Any, settings_factory: Any,
                                                                 smtp_sink: SmtpSink) -> None:
    clock = FakeClock()
    settings = settings_factory(outgoing={"transport": "smtp", "smtp_host": smtp_sink.host,
                                          "smtp_port": smtp_sink.port})
    app = await app_factory(settings, clock=clock, inline_analysis=True)
    await notices(app, await teacher(app), 10)
    await app.worker.drain()
    first = [m for m in smtp_sink.messages if TEACHER in m.rcpt_tos]
    assert len(first) == NOTICES_PER_MINUTE < 10  # paced: the rest wait, nothing is dropped
    assert await OutgoingMail.filter(state="suppressed").count() == 0
    clock.advance(timedelta(minutes=1, seconds=1))
    await app.worker.drain()
    arrived = [m for m in smtp_sink.messages if TEACHER in m.rcpt_tos]
    assert len(arrived) == 10
    assert sorted(m.message.get_body(("plain",)).get_content().count("10A") for m in arrived) == [1] * 10  # type: ignore[union-attr]
    assert {str(m) for m in await OutgoingMail.filter(recipient=TEACHER).values_list("state", flat=True)} == {"sent"}
    assert await Job.filter(state="dead").count() == 0
    assert not await AuditEvent.filter(action="auto_reply_suppressed").exists()


async def test_the_reply_cap_still_holds_for_answers_to_outside_senders(app_factory: Any, settings_factory: Any,
                                                                      smtp_sink: SmtpSink) -> None:
    from edudesk.core.requests.mailqueue import mail_context, queue_mail

    settings = settings_factory(outgoing={"transport": "smtp", "smtp_host": smtp_sink.host,
                                          "smtp_port": smtp_sink.port})
    app = await app_factory(settings, inline_analysis=True)
    for i in range(5):
        async with in_transaction() as conn:
            await queue_mail(conn, app.queue, app.clock, app.settings, key=f"unreadable:{i}", template="unreadable",
                             recipient="an.nv2003@gmail.com", context={**mail_context(app.settings), "number": i})
    await app.worker.drain()
    assert await OutgoingMail.filter(state="sent").count() == app.settings.outgoing.auto_reply_limit
    assert await OutgoingMail.filter(state="suppressed").count() == 5 - app.settings.outgoing.auto_reply_limit


async def test_a_notice_that_cannot_be_delivered_is_reported_to_the_alert_address(
        app_factory: Any, settings_factory: Any) -> None:
    with SmtpSink(refuse={TEACHER}) as sink:
        settings = settings_factory(outgoing={"transport": "smtp", "smtp_host": sink.host, "smtp_port": sink.port,
                                              "alerts_to": ["it-admin@hust.edu.vn"]})
        app = await app_factory(settings, inline_analysis=True)
        await notices(app, await teacher(app), 1)
        await app.worker.drain()
        alert = await sink.wait_for(lambda m: "it-admin@hust.edu.vn" in m.rcpt_tos)
    body = alert.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Thông báo gửi cán bộ không gửi được" in alert.subject
    assert TEACHER in body and "không gửi được" in body
    event = await AuditEvent.get(action="staff_notice_failed")
    assert event.detail["recipient"] == TEACHER and "550" in event.detail["error"]
    assert await OutgoingMail.filter(recipient=TEACHER, state="dead").count() == 1


async def test_answers_are_marked_sent_with_their_jobs_completion_and_a_crash_before_it_resends_each_once(
        app_factory: Any, settings_factory: Any) -> None:
    from pathlib import Path

    from edudesk.core.jobs import JobWorker
    from edudesk.core.requests.mailqueue import mail_context, queue_mail

    clock = FakeClock()
    app = await app_factory(settings_factory(jobs={"lease_seconds": 60.0}), clock=clock, inline_analysis=True)
    async with in_transaction() as conn:
        for i in range(3):
            await queue_mail(conn, app.queue, app.clock, app.settings, key=f"unreadable:{i}", template="unreadable",
                             recipient=f"sv{i}@hust.edu.vn", context={**mail_context(app.settings), "number": i})
    outbox = Path(app.settings.data_dir) / "outbox" / "new"
    for job in await app.queue.claim(3):  # a worker sends all three, then its process dies before it records it
        await app.worker.run_one(job)
    slots = dict(await OutgoingMail.all().values_list("id", "sent_at"))
    assert {str(s) for s in await OutgoingMail.all().values_list("state", flat=True)} == {"sending"}
    assert len(list(outbox.iterdir())) == 3 and not await AuditEvent.filter(action="mail_sent").exists()
    clock.advance(timedelta(seconds=61))  # its leases run out: the next process takes the jobs over
    assert await JobWorker(app.queue, app.worker.handlers).drain() == 3
    assert {str(s) for s in await OutgoingMail.all().values_list("state", flat=True)} == {"sent"}
    assert dict(await OutgoingMail.all().values_list("id", "sent_at")) == slots  # no second slot was taken
    assert len(list(outbox.iterdir())) == 3  # sent again under the same Message-IDs: one file each
    sent = await AuditEvent.filter(action="mail_sent").values_list("detail", flat=True)
    assert sorted(d["recipient"] for d in sent) == [f"sv{i}@hust.edu.vn" for i in range(3)]  # type: ignore[index]
    assert await Job.filter(state="done").count() == 3
