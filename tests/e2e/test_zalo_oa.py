"""Zalo Official Account end to end, against the fake OA API and OAuth server: an office member linked
through the OA gets a card with hidden query buttons; tapping Hợp lệ approves (the payload is a one-time token
of that person), tapping it again or forwarding it from another account does nothing (audited); an
expired access token is refreshed once and the message still goes; two replicas refreshing together spend
the single-use refresh token once; a webhook call with a wrong signature is refused."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edudesk.app import App
from edudesk.bot.zalo.oa import OaTokens
from edudesk.core.intake.domain import Population
from edudesk.core.models import AuditEvent
from edudesk.core.people.chatlinks import issue_link_code
from edudesk.core.people.linkmodels import OAuthToken
from edudesk.core.people.models import Staff
from edudesk.core.people.registry import import_registry
from edudesk.core.requests.models import Request
from edudesk.core.secrets import load_secret_box
from tests.conftest import wait_until
from tests.e2e.test_zalo_bot import _up, free_port
from tests.fakes.zalo_oa import FakeZaloOa
from tests.mails import registry_xlsx, student_form_mail

pytestmark = [pytest.mark.db, pytest.mark.slow]

OFFICE, OTHER = "5410000000000000001", "5410000000000000002"


@dataclass
class World:
    app: App
    fake: FakeZaloOa
    office: Staff
    hook: str

    def texts(self, user: str) -> list[str]:
        return [m.text for m in self.fake.messages(user)]

    async def say(self, user: str, text: str) -> str:
        before = len(self.texts(user))
        delivery = await self.fake.inject_text(user, text)
        assert delivery.status == 200, delivery
        await self.fake.wait_for(lambda: len(self.texts(user)) > before, 15.0)
        return self.texts(user)[before]


@pytest.fixture
async def world(app_factory: Any, settings_factory: Any, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    fake = FakeZaloOa()
    await fake.start()
    _, refresh = fake.issue_tokens()
    port = free_port()
    monkeypatch.setenv("EDUDESK_ZALO_APP_SECRET", fake.secret_key)
    monkeypatch.setenv("EDUDESK_ZALO_OA_SECRET", fake.oa_secret_key)
    monkeypatch.setenv("EDUDESK_ZALO_REFRESH_TOKEN", refresh)
    settings = settings_factory(web={"enabled": False}, zalo={
        "enabled": True, "api": "oa", "oa_api_base": fake.url, "oauth_base": fake.url, "app_id": fake.app_id,
        "webhook_port": port})
    app: App = await app_factory(settings, inline_analysis=True)
    await import_registry(registry_xlsx(tmp_path / "sv.xlsx", [
        ("20201234", "Nguyễn Văn An", "05/03/2003", "CNTT-01 K65", "")]), Population.STUDENT, settings, app.clock)
    office = await Staff.create(name="Lê Văn Phòng", email="phong@hust.edu.vn", roles=["office"],
                                created_at=app.clock.now())
    other = await Staff.create(name="Người Khác", email="khac@hust.edu.vn", roles=["office"], notify_via="email",
                               created_at=app.clock.now())
    hook = f"http://127.0.0.1:{port}/zalo/webhook"
    fake.set_webhook(hook)
    task = asyncio.get_running_loop().create_task(app.supervisor().run())  # noqa: TID251 - test harness
    world = World(app, fake, office, hook)
    await wait_until(lambda: _up(port), 10.0)
    for user, staff in ((OFFICE, office), (OTHER, other)):
        code = await issue_link_code(staff.id, "zalo", settings, app.clock, issued_by="test")
        assert (await world.say(user, f"/lienket {code}")).startswith("✓ Đã liên kết")
    yield world
    app.worker.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await fake.stop()


async def test_tap_approves_once_and_only_for_its_owner(world: World) -> None:
    app, fake = world.app, world.fake
    await app.ledger.store(student_form_mail(message_id="<oa1@gmail.com>"), source="smtp")
    await fake.wait_for(lambda: any(m.buttons for m in fake.messages(OFFICE)), 20.0)
    card = next(m for m in fake.messages(OFFICE) if m.buttons)
    request = await Request.get()
    assert f"YC-{request.id}" in card.text and f"/tuchoi {request.id}" in card.text and len(card.text) <= 2000
    [button] = [b for b in card.buttons if b["title"].startswith("Hợp lệ")]
    assert button["type"] == "oa.query.hide" and button["payload"].startswith("#a ")
    assert not [m for m in fake.messages(OTHER) if m.buttons], "the other office member chose e-mail"

    # Forwarded: the same payload typed from another linked account is refused, and uses nothing up.
    answer = await world.say(OTHER, button["payload"])
    assert "của người khác" in answer
    assert (await Request.get(id=request.id)).state == "received"
    before = len(world.texts(OFFICE))
    await fake.press(OFFICE, button["title"])
    await fake.wait_for(lambda: any("đã ghi nhận «Hợp lệ»" in t for t in world.texts(OFFICE)[before:]), 15.0)
    assert (await Request.get(id=request.id)).state == "approved"
    before = len(world.texts(OFFICE))
    await fake.press(OFFICE, button["title"], message_id=card.message_id)  # the same tap again
    await fake.wait_for(lambda: any("đã được dùng" in t for t in world.texts(OFFICE)[before:]), 15.0)
    reasons = [e.detail["reason"] for e in await AuditEvent.filter(action="action_token_refused").order_by("id")]
    assert reasons == ["not_yours", "replayed"]


async def test_expired_access_token_is_refreshed_once(world: World) -> None:
    fake = world.fake
    refreshes = len([c for c in fake.refresh_calls if c.ok])
    fake.expire_access_token()
    assert "/giup" in await world.say(OFFICE, "xin chào")  # the answer went out with a fresh token
    assert len([c for c in fake.refresh_calls if c.ok]) == refreshes + 1
    assert not [c for c in fake.refresh_calls if not c.ok]
    row = await OAuthToken.get()
    assert fake.refresh_calls[-1].token not in (row.access_sealed + row.refresh_sealed)  # sealed at rest


async def test_two_replicas_refresh_the_single_use_token_once(world: World) -> None:
    fake, settings = world.fake, world.app.settings
    fake.refresh_latency = 0.2  # both replicas are inside the refresh at once
    row = await OAuthToken.get()
    box = load_secret_box(settings)
    one, two = OaTokens(settings, world.app.clock, box), OaTokens(settings, world.app.clock, box)
    try:
        first, second = await asyncio.gather(one.refresh(row.generation), two.refresh(row.generation))
    finally:
        await one.close()
        await two.close()
    assert first == second and fake.access_token_valid(first)
    assert [c.ok for c in fake.refresh_calls[-1:]] == [True] and not [c for c in fake.refresh_calls if not c.ok]
    assert (await OAuthToken.get()).generation == row.generation + 1


async def test_webhook_with_a_wrong_signature_is_refused(world: World) -> None:
    body = json.dumps({"app_id": world.fake.app_id, "event_name": "user_send_text", "timestamp": "1",
                       "sender": {"id": OFFICE}, "message": {"text": "/duyet 1", "msg_id": "x"}})
    async with aiohttp.ClientSession() as http:
        async with http.post(world.hook, data=body, headers={"X-ZEvent-Signature": "mac=00"}) as response:
            assert response.status == 401
    assert await AuditEvent.filter(action="zalo_event_refused").count() == 1


async def test_the_oa_webhook_will_not_start_without_its_secret(settings_factory: Any,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from edudesk.bot.zalo.oa import OaReceiver
    from edudesk.core.ports import FakeClock

    monkeypatch.delenv("EDUDESK_ZALO_OA_SECRET", raising=False)
    settings = settings_factory(zalo={"enabled": True, "api": "oa", "app_id": "123", "webhook_port": 0})
    receiver = OaReceiver(settings, FakeClock(), None, None, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="EDUDESK_ZALO_OA_SECRET"):
        await receiver.start_webhook()  # else sha256 of public values would "sign" anyone's events
