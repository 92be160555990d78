"""The operator's pages on a real started console and database: /healthz, /readyz, /metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edudesk.app import App
from edudesk.core.accounts.models import AccountLog
from edudesk.core.db import close_database
from edudesk.core.intake.models import ChannelHealth, InboundMail
from edudesk.core.jobs import JobKind, JobState
from edudesk.core.models import Job
from edudesk.core.ops import CHAT_COUNTS
from edudesk.core.ports import FakeClock
from edudesk.core.requests.models import Request, RequestPerson
from edudesk.core.signing.models import SchoolClass, SchoolRecord, SignatureStep, StepState
from tests.conftest import wait_until

pytestmark = pytest.mark.db
TOKEN_ENV = "EDUDESK_TEST_METRICS_TOKEN"


@dataclass
class Ops:
    """A started console on a free port, its App and the test clock."""

    app: App
    clock: FakeClock

    @property
    def url(self) -> str:
        assert self.app.web is not None
        return self.app.web.base_url

    async def get(self, path: str, **headers: str) -> tuple[int, str, str]:
        """Status, content type and body of one GET without cookies (as a scraper or a probe asks)."""
        async with aiohttp.ClientSession() as client, client.get(f"{self.url}{path}", headers=headers) as r:
            return r.status, r.headers.get("Content-Type", ""), await r.text()

    async def readyz(self) -> tuple[int, dict[str, Any]]:
        async with aiohttp.ClientSession() as client, client.get(f"{self.url}/readyz") as r:
            return r.status, await r.json()


async def _started(app_factory: Any, settings: Any) -> Ops:
    clock = FakeClock()
    app = await app_factory(settings, clock=clock, inline_analysis=True)
    assert app.web is not None
    await app.web.start()
    return Ops(app, clock)


@pytest.fixture
async def ops(app_factory: Any, settings_factory: Any) -> AsyncIterator[Ops]:
    yield await _started(app_factory, settings_factory(web={"port": 0}))


async def _request(clock: FakeClock, state: str, *, deadline_hours: float | None = None,
                   population: str = "student") -> Request:
    now = clock.now()
    deadline = now + timedelta(hours=deadline_hours) if deadline_hours is not None else None
    return await Request.create(kind="new_account", population=population, state=state,
                                sender="an.nv2003@gmail.com", subject="Đề nghị cấp tài khoản", received_at=now,
                                updated_at=now, deadline=deadline)


async def _job(clock: FakeClock, kind: JobKind, key: str, state: JobState, *, due_seconds_ago: float) -> None:
    now = clock.now()
    await Job.create(kind=kind, key=key, state=state, run_after=now - timedelta(seconds=due_seconds_ago),
                     created_at=now - timedelta(seconds=due_seconds_ago + 5))


async def _mail(clock: FakeClock, n: int, source: str, state: str, outcome: str) -> None:
    await InboundMail.create(dedupe_key=f"mid:<{n}@example.vn>", content_hash=f"{n:064x}", source=source,
                             content=b"Subject: x\r\n\r\nbody\r\n", received_at=clock.now(), state=state,
                             outcome=outcome)


async def _seed(clock: FakeClock) -> None:
    """Requests in several states (one received past its deadline), jobs of known ages, a dead job, mails,
    a failed provisioning row, signatures, channels: the numbers the metrics test expects."""
    now = clock.now()
    await _request(clock, "received", deadline_hours=-2)  # past its deadline: an SLA breach
    await _request(clock, "received", deadline_hours=20)
    await _request(clock, "approved", deadline_hours=5)
    failed = await _request(clock, "provisioning", deadline_hours=1)
    await _request(clock, "done")
    await _request(clock, "rejected")
    await RequestPerson.create(request=failed, row=0, full_name="Nguyễn Văn An", data={}, outcome="failed")
    await RequestPerson.create(request=failed, row=1, full_name="Trần Thị Bình", data={}, outcome="done")
    await AccountLog.create(at=now, action="create", address="an.nguyenvan@sis.hust.edu.vn", backend="local",
                            ok=False, answer="refused")
    await AccountLog.create(at=now, action="taken", address="binh.tranthi@sis.hust.edu.vn", backend="local",
                            ok=False, answer="taken")  # an answer, not an error
    await AccountLog.create(at=now, action="create", address="c.le@sis.hust.edu.vn", backend="local", ok=True)
    await _job(clock, JobKind.PROCESS_MAIL, "pm:1", JobState.PENDING, due_seconds_ago=300)
    await _job(clock, JobKind.PROCESS_MAIL, "pm:2", JobState.PENDING, due_seconds_ago=100)
    await _job(clock, JobKind.SEND_MAIL, "sm:1", JobState.PENDING, due_seconds_ago=60)
    await _job(clock, JobKind.DELETE_ACCOUNT, "del:1", JobState.PENDING, due_seconds_ago=-86400)  # not due yet
    await _job(clock, JobKind.SEND_MAIL, "sm:2", JobState.DEAD, due_seconds_ago=7200)
    await _job(clock, JobKind.SEND_MAIL, "sm:3", JobState.DONE, due_seconds_ago=7200)  # done jobs are not counted
    await _mail(clock, 1, "smtp", "processed", "request")
    await _mail(clock, 2, "smtp", "processed", "request")
    await _mail(clock, 3, "imap", "pending", "")
    klass = await SchoolClass.create(year="2025-2026", name="10A1", created_at=now)
    record = await SchoolRecord.create(klass=klass, student_code="HS001", student_name="Lê Văn Cường",
                                       original=b"%PDF", pdf=b"%PDF", updated_at=now)
    for field, state, ago in (("gvbm_1", StepState.SIGNED, 20), ("gvbm_2", StepState.SIGNED, 50),
                              ("gvcn", StepState.SIGNED, 61), ("bgh_1", StepState.OPEN, None)):
        await SignatureStep.create(record=record, stage=1, field=field, state=state,
                                   signed_at=now - timedelta(seconds=ago) if ago is not None else None)
    await ChannelHealth.create(channel="imap", ok=False, failures=3, detail="LOGIN refused for office@hust.edu.vn",
                               last_error_at=now)
    await ChannelHealth.create(channel="outgoing", ok=False, failures=1, last_error_at=now)
    await ChannelHealth.create(channel="telegram", ok=True, failures=0, last_ok_at=now)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def _of(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> dict[tuple[str, ...], float]:
    return {tuple(v for _k, v in labels): value for (n, labels), value in samples.items() if n == name}


async def test_metrics_give_exactly_the_seeded_figures(ops: Ops) -> None:
    await _seed(ops.clock)
    sent_before, throttled_before = CHAT_COUNTS.snapshot()
    CHAT_COUNTS.sent("zalo")
    CHAT_COUNTS.throttled("zalo")
    status, content_type, text = await ops.get("/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    samples = _samples(text)
    assert _of(samples, "edudesk_requests") == {("approved",): 1, ("done",): 1, ("provisioning",): 1,
                                                ("received",): 2, ("rejected",): 1}
    assert _of(samples, "edudesk_requests_overdue") == {("received",): 1}
    assert _of(samples, "edudesk_jobs") == {("process_mail", "pending"): 2, ("send_mail", "pending"): 1,
                                            ("delete_account", "pending"): 1, ("send_mail", "dead"): 1}
    assert _of(samples, "edudesk_jobs_oldest_due_seconds") == {("process_mail",): 300, ("send_mail",): 60}
    assert _of(samples, "edudesk_jobs_dead") == {("send_mail",): 1}
    assert _of(samples, "edudesk_mails") == {("request", "smtp", "processed"): 2, ("", "imap", "pending"): 1}
    assert _of(samples, "edudesk_signatures_last_minute") == {(): 2}
    assert _of(samples, "edudesk_provision_failed_rows") == {("local",): 1}
    assert _of(samples, "edudesk_provision_errors_total") == {("local",): 1}
    assert _of(samples, "edudesk_channel_failures") == {("imap",): 3, ("outgoing",): 1, ("telegram",): 0}
    assert _of(samples, "edudesk_chat_sends_total")[("zalo",)] == sent_before.get("zalo", 0) + 1
    assert _of(samples, "edudesk_chat_throttled_total")[("zalo",)] == throttled_before.get("zalo", 0) + 1
    # Counts only: nobody's name, address or subject, and no channel's error text.
    for private in ("gmail", "Nguyễn", "Đề nghị", "hust.edu.vn", "LOGIN", "HS001"):
        assert private not in text
    ops.clock.advance(timedelta(minutes=1))  # the test clock moves: ages grow, the signatures leave the minute
    samples = _samples((await ops.get("/metrics"))[2])
    assert _of(samples, "edudesk_jobs_oldest_due_seconds") == {("process_mail",): 360, ("send_mail",): 120}
    assert _of(samples, "edudesk_signatures_last_minute") == {(): 0}


async def test_healthz_answers_ok_without_signing_in(ops: Ops) -> None:
    status, content_type, text = await ops.get("/healthz")
    assert status == 200 and content_type.startswith("application/json")
    assert text == '{"status": "ok"}'


async def test_readyz_names_the_failing_channel_and_the_stopped_worker(ops: Ops) -> None:
    status, body = await ops.readyz()
    assert status == 503  # the job worker has not started
    assert body["checks"]["database"] == {"ok": True, "reason": ""}
    assert body["checks"]["jobs"] == {"ok": False, "reason": "worker not running"}
    worker = asyncio.get_running_loop().create_task(ops.app.worker.run())  # noqa: TID251 - test harness
    try:
        status, body = await wait_until(lambda: _ready(ops))
        assert body == {"status": "ok", "checks": {"database": {"ok": True, "reason": ""},
                                                   "jobs": {"ok": True, "reason": ""}}}
        # One failure is not yet an outage; as many in a row as staff are alerted after is.
        await ops.app.ledger.report_health("imap", False, "LOGIN refused for office@hust.edu.vn")
        assert (await ops.readyz())[0] == 200
        for _ in range(ops.app.settings.imap.alert_after_failures - 1):
            await ops.app.ledger.report_health("imap", False, "LOGIN refused for office@hust.edu.vn")
        status, body = await ops.readyz()
        assert status == 503 and body["status"] == "failing"
        assert body["checks"]["channel:imap"] == {"ok": False, "reason": "failing (3 in a row)"}
        assert "office@" not in str(body)
        await ops.app.ledger.report_health("imap", True)
        assert (await ops.readyz())[0] == 200
    finally:
        ops.app.worker.stop()
        await worker
    status, body = await ops.readyz()
    assert status == 503 and body["checks"]["jobs"]["ok"] is False


async def _ready(ops: Ops) -> tuple[int, dict[str, Any]] | None:
    status, body = await ops.readyz()
    return (status, body) if status == 200 else None


async def test_readyz_says_the_database_is_gone_when_it_is_closed(ops: Ops) -> None:
    assert (await ops.readyz())[1]["checks"]["database"]["ok"] is True
    await close_database()
    status, body = await ops.readyz()
    assert status == 503
    assert body["checks"]["database"]["ok"] is False and body["checks"]["database"]["reason"]
    assert (await ops.get("/healthz"))[0] == 200  # alive all the same


async def test_metrics_ask_for_the_bearer_token_when_one_is_set(app_factory: Any, settings_factory: Any) -> None:
    settings = settings_factory(web={"port": 0, "metrics_token_env": TOKEN_ENV}).with_secrets(
        {TOKEN_ENV: "s3cret-scrape-token"})
    ops = await _started(app_factory, settings)
    assert (await ops.get("/metrics"))[0] == 401
    assert (await ops.get("/metrics", Authorization="Bearer wrong"))[0] == 401
    status, _type, text = await ops.get("/metrics", Authorization="Bearer s3cret-scrape-token")
    assert status == 200 and "edudesk_requests" in text
    assert (await ops.get("/healthz"))[0] == 200  # the probes stay open
    assert (await ops.get("/readyz"))[0] in (200, 503)


async def test_chat_sends_and_429s_of_the_zalo_client_reach_metrics(ops: Ops) -> None:
    from edudesk.bot.zalo.botapi import ZaloBotClient
    from edudesk.core.ports import ChatBusy
    from tests.fakes.zalo_bot import FakeZaloBot

    def counts() -> tuple[float, float]:
        return (_of(samples, "edudesk_chat_sends_total").get(("zalo",), 0),
                _of(samples, "edudesk_chat_throttled_total").get(("zalo",), 0))

    samples = _samples((await ops.get("/metrics"))[2])
    sent, throttled = counts()
    async with FakeZaloBot() as fake:
        fake.add_user("6ede9afa66b88fe6d6a9")
        client = ZaloBotClient(fake.url, fake.token, messages_per_second=1000)
        try:
            await client.send("6ede9afa66b88fe6d6a9", "YC-1: đã nhận")
            fake.fail_next("sendMessage", 429, "Quota exceeded")
            with pytest.raises(ChatBusy):
                await client.send("6ede9afa66b88fe6d6a9", "YC-2: đã nhận")
        finally:
            await client.close()
        assert len(fake.sent) == 1
    samples = _samples((await ops.get("/metrics"))[2])
    assert counts() == (sent + 1, throttled + 1)


async def test_ops_port_of_its_own_serves_a_replica_without_the_console(app_factory: Any,
                                                                         settings_factory: Any) -> None:
    settings = settings_factory(web={"enabled": False}, ops={"enabled": True, "port": 0})
    clock = FakeClock()
    app = await app_factory(settings, clock=clock, inline_analysis=True)
    assert app.web is None and app.ops is not None
    await app.ops.start()
    base = app.ops.base_url
    assert not base.endswith(":0")

    async def get(path: str, **headers: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as client, client.get(f"{base}{path}", headers=headers) as r:
            return r.status, await r.text()

    assert await get("/healthz") == (200, '{"status": "ok"}')
    status, text = await get("/readyz")
    assert status == 503 and '"worker not running"' in text  # the worker of this process is watched here too
    worker = asyncio.get_running_loop().create_task(app.worker.run())  # noqa: TID251 - test harness
    try:
        async def ready() -> int | None:
            code = (await get("/readyz"))[0]
            return code if code == 200 else None

        assert await wait_until(ready) == 200
    finally:
        app.worker.stop()
        await worker
    await _seed(clock)
    status, text = await get("/metrics")
    assert status == 200 and _of(_samples(text), "edudesk_requests_overdue") == {("received",): 1}
    # Only the three pages: no console page, no sign-in, no static file is reachable on this port.
    for path in ("/", "/login", "/queue", "/static/console.css", "/records/verify"):
        assert (await get(path))[0] == 404, path
    await app.ops.stop()
    async with aiohttp.ClientSession() as client:
        with pytest.raises(aiohttp.ClientConnectionError):
            await client.get(f"{base}/healthz")


async def test_ops_port_asks_for_the_metrics_token_too(app_factory: Any, settings_factory: Any) -> None:
    settings = settings_factory(web={"enabled": False, "metrics_token_env": TOKEN_ENV},
                                ops={"enabled": True, "port": 0}).with_secrets({TOKEN_ENV: "s3cret-scrape-token"})
    app = await app_factory(settings, clock=FakeClock(), inline_analysis=True)
    assert app.ops is not None
    await app.ops.start()
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{app.ops.base_url}/metrics") as r:
            assert r.status == 401
        async with client.get(f"{app.ops.base_url}/metrics",
                              headers={"Authorization": "Bearer s3cret-scrape-token"}) as r:
            assert r.status == 200 and "edudesk_requests" in await r.text()
