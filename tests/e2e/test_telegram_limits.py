"""Telegram's limits: bursts of cards are paced so the (fake) Bot API never answers 429, and a 429 anyway
(a stricter server) pauses the sender and loses nothing."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from tortoise.transactions import in_transaction

from edudesk.app import App
from edudesk.core.chats.models import ChatCard
from edudesk.core.chats.notify import enqueue_cards, enqueue_notice
from edudesk.core.people.models import Staff
from edudesk.core.requests.models import Request
from edudesk.core.requests.workflow import State
from tests.conftest import wait_until
from tests.fakes.telegram import FakeTelegram

pytestmark = [pytest.mark.db, pytest.mark.slow]
OFFICE = -1002000


@pytest.fixture
async def start(app_factory: Any, settings_factory: Any,
                monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Callable[..., Any]]:
    """Start an App whose bot talks to a FakeTelegram with the given limits."""
    started: list[tuple[App, FakeTelegram, asyncio.Task[None]]] = []

    async def go(fake: FakeTelegram, redis_url: str = "", **telegram: Any) -> App:
        await fake.start()
        monkeypatch.setenv("EDUDESK_TELEGRAM_TOKEN", fake.token)
        settings = settings_factory(web={"enabled": False}, smtpd={"enabled": False}, redis={"url": redis_url},
                                    jobs={"concurrency": 8},
                                    telegram={"enabled": True, "api_server": fake.url, "office_chat_id": OFFICE,
                                              **telegram})
        app = await app_factory(settings, inline_analysis=True)
        task = asyncio.get_running_loop().create_task(app.worker.run())  # noqa: TID251 - test harness
        started.append((app, fake, task))
        return app

    yield go
    for app, fake, task in started:
        app.worker.stop()
        await asyncio.wait_for(task, 15)
        await fake.stop()


async def burst_of_requests(app: App, n: int) -> None:
    """n new requests at once, each with its card job, as intake makes them."""
    now = app.clock.now()
    async with in_transaction() as conn:
        for i in range(n):
            r = await Request.create(kind="new_account", population="student", state="received",
                                     sender=f"sv{i}@gmail.com", sender_name=f"Sinh viên {i}", received_at=now,
                                     deadline=now + timedelta(hours=24), updated_at=now, using_db=conn)
            await enqueue_cards(conn, app.queue, r.id, 0, State.RECEIVED)
    app.queue.wake()


async def one_request(app: App) -> Request:
    """A new request with no card yet (the card jobs are run by hand in these tests)."""
    now = app.clock.now()
    return await Request.create(kind="new_account", population="student", state="received", sender="a@b.c",
                                received_at=now, deadline=now + timedelta(hours=24), updated_at=now)


async def test_a_burst_of_300_cards_to_the_office_group_gets_no_429(start: Any) -> None:
    # Telegram's group limit (20 per minute) scaled 100x in time on both sides; the overall limit is real.
    fake = FakeTelegram(global_limit=(30, 1.0), chat_limit=None, group_limit=(20, 0.6))
    app = await start(fake, rate_group_per_minute=2000.0, rate_chat_seconds=0.0)
    began = time.monotonic()
    await burst_of_requests(app, 300)
    await fake.wait_for(lambda: len(fake.bot_messages(OFFICE)) >= 300, timeout=60)
    elapsed = time.monotonic() - began
    assert fake.count_429 == 0

    async def all_recorded() -> bool:
        return await ChatCard.filter(chat=str(OFFICE)).count() == 300

    await wait_until(all_recorded)  # the last posts' rows commit just after the fake has them
    assert len(fake.bot_messages(OFFICE)) == 300  # none doubled
    # The binding limit is 20 per 0.6 s (33/s) or 30/s overall: about 10 s; far longer means idling.
    print(f"300 cards in {elapsed:.1f} s ({300 / elapsed:.1f}/s)")
    assert elapsed < 30


async def test_notices_to_many_people_go_at_the_overall_rate_without_429(start: Any) -> None:
    fake = FakeTelegram()  # Telegram's real limits: 30/s overall, 1/s per chat
    app = await start(fake)
    now = app.clock.now()
    staff = await Staff.bulk_create([Staff(name=f"GV {i}", telegram_id=10_000 + i, roles=[], created_at=now)
                                     for i in range(90)])
    del staff
    async with in_transaction() as conn:
        for s in await Staff.all():
            await enqueue_notice(conn, app.queue, f"t:{s.id}", f"staff:{s.id}", f"Đến lượt thầy/cô ký ({s.name})")
    began = time.monotonic()
    app.queue.wake()
    await fake.wait_for(lambda: len(fake.sent_calls("sendMessage")) >= 90, timeout=30)
    times = [c.time for c in fake.sent_calls("sendMessage")]
    rate = (len(times) - 1) / (max(times) - min(times))
    print(f"90 notices: {rate:.1f}/s, first after {min(times) - began:.2f} s")
    assert fake.count_429 == 0
    assert rate > 0.8 * 30


async def test_a_stricter_server_answering_429_pauses_the_sender_and_loses_nothing(start: Any) -> None:
    fake = FakeTelegram(global_limit=(10, 1.0), chat_limit=None, group_limit=None)  # stricter than we pace
    app = await start(fake, rate_chat_seconds=0.0, rate_group_per_minute=0.0)
    await burst_of_requests(app, 40)
    await fake.wait_for(lambda: len(fake.bot_messages(OFFICE)) >= 40, timeout=60)
    assert fake.count_429 > 0  # the server said no at least once ...
    assert len(fake.bot_messages(OFFICE)) == 40  # ... and every card still arrived, once
    assert app.telegram.pacer.retries == fake.count_429


async def test_with_redis_the_bot_paces_through_shared_windows(start: Any) -> None:
    from redis.asyncio import Redis

    url = "redis://127.0.0.1:6379/15"
    client = Redis.from_url(url)
    bot_id = random.randrange(10**8, 10**9)  # a bot of its own: another run on this host paces its own windows
    fake = FakeTelegram(global_limit=(30, 1.0), chat_limit=None, group_limit=(20, 0.6), token=f"{bot_id}:TEST")
    app = await start(fake, redis_url=url, rate_group_per_minute=2000.0, rate_chat_seconds=0.0)
    await burst_of_requests(app, 60)
    await fake.wait_for(lambda: len(fake.bot_messages(OFFICE)) >= 60, timeout=30)
    assert fake.count_429 == 0
    assert await client.exists(f"edudesk:tg:{bot_id}:overall")
    await client.delete(*[k async for k in client.scan_iter(f"edudesk:tg:{bot_id}:*")])
    await client.aclose()


async def test_two_workers_refreshing_one_request_post_its_card_once(start: Any) -> None:
    from edudesk.core.chats.hub import ChatHub
    from edudesk.core.models import Job

    fake = FakeTelegram(chat_limit=None, group_limit=None)
    app = await start(fake, rate_chat_seconds=0.0)
    app.worker.stop()  # drive the handlers by hand
    request = await one_request(app)
    other = ChatHub(app.settings, app.clock, app.chats.cards)  # another replica: its own in-process lock, same database
    other.add(app.telegram.chat, app.telegram.chats())
    job = Job(kind="refresh_cards", key="k", payload={"request_id": request.id, "post_to": ["office"]})
    from edudesk.core.jobs import RetryLater

    results = await asyncio.gather(app.chats.refresh_cards(job), other.refresh_cards(job), return_exceptions=True)
    # The one that found the other's post in flight comes back later (as the worker would), and posts nothing.
    assert all(r is None or isinstance(r, RetryLater) for r in results), results
    await other.refresh_cards(job)
    await app.chats.refresh_cards(job)
    assert len(fake.bot_messages(OFFICE)) == 1
    assert (await ChatCard.get(request_id=request.id)).message_ref == str(fake.bot_messages(OFFICE)[0].message_id)


async def test_a_card_claimed_by_a_worker_that_died_is_posted_after_the_claim_times_out(start: Any) -> None:
    from edudesk.core.models import Job

    fake = FakeTelegram(chat_limit=None, group_limit=None)
    app = await start(fake, rate_chat_seconds=0.0)
    app.worker.stop()
    request = await one_request(app)
    await ChatCard.create(surface="telegram", chat=str(OFFICE), request_id=request.id, message_ref="?dead-worker",
                          audience="office", version=0, updated_at=app.clock.now() - timedelta(minutes=3))
    job = Job(kind="refresh_cards", key="k", payload={"request_id": request.id, "post_to": ["office"]})
    await app.chats.refresh_cards(job)
    assert len(fake.bot_messages(OFFICE)) == 1
    assert not (await ChatCard.get(request_id=request.id)).message_ref.startswith("?")


async def test_a_chat_that_keeps_failing_is_reported_to_staff_and_its_recovery_noted(start: Any) -> None:
    from edudesk.core.intake.models import ChannelHealth
    from edudesk.core.models import AuditEvent, Job
    from edudesk.core.requests.models import OutgoingMail

    fake = FakeTelegram(chat_limit=None, group_limit=None)
    app = await start(fake, rate_chat_seconds=0.0)
    app.worker.stop()
    request = await one_request(app)
    job = Job(kind="refresh_cards", key="k", payload={"request_id": request.id, "post_to": ["office"]})
    fake.block_chat(OFFICE)  # the bot was removed from the office group
    for _ in range(3):
        with pytest.raises(Exception, match="Forbidden|403|blocked|kicked"):
            await app.chats.refresh_cards(job)
    health = await ChannelHealth.get(channel="telegram")
    assert not health.ok and health.failures == 3
    assert await AuditEvent.filter(action="channel_failing").count() == 1
    assert await OutgoingMail.filter(template="channel_failing").count() == 1
    fake.block_chat(OFFICE, False)
    await app.chats.refresh_cards(job)
    assert (await ChannelHealth.get(channel="telegram")).ok
    assert await AuditEvent.filter(action="channel_recovered").count() == 1
    assert len(fake.bot_messages(OFFICE)) == 1


async def test_a_card_another_worker_is_posting_makes_the_job_come_back_not_finish(start: Any) -> None:
    from edudesk.core.jobs import RetryLater
    from edudesk.core.models import Job

    fake = FakeTelegram(chat_limit=None, group_limit=None)
    app = await start(fake, rate_chat_seconds=0.0)
    app.worker.stop()
    request = await one_request(app)
    await ChatCard.create(surface="telegram", chat=str(OFFICE), request_id=request.id, message_ref="?live-worker",
                          audience="office", version=0, updated_at=app.clock.now() - timedelta(seconds=65))
    job = Job(kind="refresh_cards", key="k", payload={"request_id": request.id, "post_to": []})
    with pytest.raises(RetryLater):
        await app.chats.refresh_cards(job)
    assert not fake.bot_messages(OFFICE)  # the other worker may still post it: no second card


async def test_a_person_who_never_started_the_bot_is_not_a_failing_channel(start: Any) -> None:
    from edudesk.core.intake.models import ChannelHealth
    from edudesk.core.jobs import PermanentJobError
    from edudesk.core.models import Job

    fake = FakeTelegram(chat_limit=None, group_limit=None)
    app = await start(fake, rate_chat_seconds=0.0)
    app.worker.stop()
    staff = await Staff.create(name="GV", telegram_id=777, roles=["office"], created_at=app.clock.now())
    fake.block_chat(777)
    job = Job(kind="chat_notice", key="n", payload={"audience": f"staff:{staff.id}", "text": "Đến lượt ký"})
    with pytest.raises(PermanentJobError):
        await app.chats.notice(job)
    assert not await ChannelHealth.filter(channel="telegram", ok=False).exists()


async def test_a_channel_marked_failing_before_a_restart_recovers_on_the_first_success(start: Any) -> None:
    from edudesk.core.intake.models import ChannelHealth
    from edudesk.core.models import Job

    fake = FakeTelegram(chat_limit=None, group_limit=None)
    app = await start(fake, rate_chat_seconds=0.0)
    app.worker.stop()
    await ChannelHealth.create(channel="telegram", ok=False, failures=5, alerted=True)
    request = await one_request(app)
    await app.chats.refresh_cards(Job(kind="refresh_cards", key="k",
                                      payload={"request_id": request.id, "post_to": ["office"]}))
    health = await ChannelHealth.get(channel="telegram")
    assert health.ok and not health.alerted and health.failures == 0
