"""The fake Zalo OA API through plain aiohttp calls: sending, limits, tokens, single-use refresh, signed taps."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from edudesk.core.ports import FakeClock
from tests.fakes.zalo_oa import FakeZaloOa, code_challenge, fake_zalo_oa_fixture  # noqa: F401 - fixture

USER = "2468458835296117922"


async def send(fake: FakeZaloOa, token: str, message: dict[str, Any], user_id: str = USER) -> dict[str, Any]:
    """POST one consultation message the way the adapter will."""
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{fake.url}/v3.0/oa/message/cs", headers={"access_token": token},
                             json={"recipient": {"user_id": user_id}, "message": message}) as resp:
            assert resp.status == 200  # Zalo answers errors with HTTP 200 too
            return dict(await resp.json())


async def token_call(fake: FakeZaloOa, form: dict[str, str], secret: str | None = None) -> dict[str, Any]:
    """POST the OAuth v4 token endpoint: a form, the app's secret in the `secret_key` header."""
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{fake.url}/v4/oa/access_token", data={"app_id": fake.app_id, **form},
                             headers={"secret_key": fake.secret_key if secret is None else secret}) as resp:
            assert resp.status == 200
            return dict(await resp.json())


def buttons_message(text: str, *buttons: dict[str, Any]) -> dict[str, Any]:
    """message.text plus a template attachment carrying the buttons."""
    return {"text": text, "attachment": {"type": "template", "payload": {"buttons": list(buttons)}}}


def query(title: str, payload: str, kind: str = "oa.query.hide") -> dict[str, Any]:
    """A query button: a tap sends `payload` back as the user's text."""
    return {"title": title, "type": kind, "payload": payload}


@pytest.fixture
def clock() -> FakeClock:
    """The clock the fake's tokens expire by."""
    return FakeClock()


@pytest.fixture
async def fake(clock: FakeClock) -> AsyncIterator[FakeZaloOa]:
    """A started fake on the test clock."""
    async with FakeZaloOa(clock=clock) as started:
        yield started
        assert started.errors == [], started.errors


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[str, list[tuple[str, dict[str, str]]]]]:
    """A tiny receiving server: (its URL, the raw bodies and headers it got)."""
    received: list[tuple[str, dict[str, str]]] = []

    async def handle(request: web.Request) -> web.Response:
        received.append((await request.text(), dict(request.headers)))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/zalo/webhook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/zalo/webhook", received
    await runner.cleanup()


# ---- sending ---------------------------------------------------------------------------------------------------


async def test_text_message_is_sent_and_answered_with_a_message_id(fake: FakeZaloOa) -> None:
    access, _ = fake.issue_tokens()
    answer = await send(fake, access, {"text": "Yêu cầu #12 đã được duyệt"})
    assert answer["error"] == 0 and answer["message"] == "Success"
    assert answer["data"]["user_id"] == USER and answer["data"]["message_id"]
    [sent] = fake.messages(USER)
    assert (sent.message_id, sent.text, sent.buttons) == (answer["data"]["message_id"], "Yêu cầu #12 đã được duyệt", [])


async def test_text_over_2000_characters_is_refused(fake: FakeZaloOa) -> None:
    access, _ = fake.issue_tokens()
    assert (await send(fake, access, {"text": "đ" * 2000}))["error"] == 0
    answer = await send(fake, access, {"text": "đ" * 2001})
    assert answer["error"] == -210 and "text" in answer["message"]
    assert len(fake.sent) == 1 and fake.refused[-1].code == -210


async def test_empty_message_and_bad_recipient_are_refused(fake: FakeZaloOa) -> None:
    access, _ = fake.issue_tokens()
    assert (await send(fake, access, {"text": ""}))["error"] == -201
    assert (await send(fake, access, {"text": "x"}, user_id="not-a-uid"))["error"] == -201
    assert fake.sent == []


async def test_buttons_within_the_limits_are_accepted(fake: FakeZaloOa) -> None:
    access, _ = fake.issue_tokens()
    five = [query("Duyệt", "#approve 12"), query("Từ chối", "#reject 12", "oa.query.show"),
            {"title": "Mở", "type": "oa.open.url", "payload": {"url": "https://edudesk.example/r/12"}},
            {"title": "Gọi", "type": "oa.open.phone", "payload": {"phone_code": "84912345678"}},
            query("Dài", "p" * 1000)]
    answer = await send(fake, access, buttons_message("Yêu cầu #12", *five))
    assert answer["error"] == 0
    assert [b["title"] for b in fake.messages(USER)[0].buttons] == ["Duyệt", "Từ chối", "Mở", "Gọi", "Dài"]


async def test_button_template_with_payload_text_is_accepted(fake: FakeZaloOa) -> None:
    access, _ = fake.issue_tokens()
    message = {"attachment": {"type": "template", "payload": {
        "template_type": "button", "text": "Chọn:", "buttons": [query("A", "#a")]}}}
    assert (await send(fake, access, message))["error"] == 0
    assert fake.sent[0].text == "Chọn:"


@pytest.mark.parametrize("buttons, code", [
    ([query(f"B{i}", f"#{i}") for i in range(6)], -210),  # six buttons
    ([query("Dài", "p" * 1001)], -210),  # payload over 1,000 characters
    ([query("T" * 101, "#t")], -210),  # title over 100 characters
    ([query("", "#t")], -201),
    ([{"title": "X", "type": "postback", "payload": "#x"}], -201),  # a Messenger type
    ([{"title": "Mở", "type": "oa.open.url", "payload": "https://x"}], -201),  # url must be {"url": ...}
    ([], -201),
])
async def test_buttons_outside_the_limits_are_refused(fake: FakeZaloOa, buttons: list[Any], code: int) -> None:
    access, _ = fake.issue_tokens()
    answer = await send(fake, access, buttons_message("Yêu cầu", *buttons))
    assert answer["error"] == code, answer
    assert fake.sent == []


async def test_user_outside_the_interaction_window_is_refused(clock: FakeClock) -> None:
    async with FakeZaloOa(clock=clock, require_interaction=True) as strict:
        access, _ = strict.issue_tokens()
        assert (await send(strict, access, {"text": "x"}))["error"] == -230
        strict.add_user(USER)
        assert (await send(strict, access, {"text": "x"}))["error"] == 0
        clock.advance(timedelta(days=8))
        strict.expire_access_token()
        access, _ = strict.issue_tokens()
        assert (await send(strict, access, {"text": "x"}))["error"] == -230


# ---- access tokens ---------------------------------------------------------------------------------------------


async def test_unknown_access_token_is_refused_with_216(fake: FakeZaloOa) -> None:
    answer = await send(fake, "made-up-token", {"text": "x"})
    assert answer == {"error": -216, "message": "Access token is invalid"}


async def test_access_token_expires_after_25_hours(fake: FakeZaloOa, clock: FakeClock) -> None:
    access, _ = fake.issue_tokens()
    clock.advance(timedelta(hours=24, minutes=59))
    assert (await send(fake, access, {"text": "x"}))["error"] == 0
    clock.advance(timedelta(minutes=2))
    answer = await send(fake, access, {"text": "x"})
    assert answer == {"error": -216, "message": "Access token has expired"}
    assert len(fake.sent) == 1 and fake.refused[-1].reason == "Access token has expired"


async def test_expire_access_token_forces_expiry(fake: FakeZaloOa) -> None:
    access, _ = fake.issue_tokens()
    fake.expire_access_token(access)
    assert (await send(fake, access, {"text": "x"}))["error"] == -216


# ---- OAuth v4: refresh and authorization code ------------------------------------------------------------------


async def test_refresh_token_works_once_and_its_reuse_is_refused(fake: FakeZaloOa) -> None:
    old_access, refresh = fake.issue_tokens()
    fake.expire_access_token(old_access)
    first = await token_call(fake, {"grant_type": "refresh_token", "refresh_token": refresh})
    assert set(first) == {"access_token", "refresh_token", "expires_in"} and first["expires_in"] == "90000"
    assert first["refresh_token"] != refresh
    assert (await send(fake, first["access_token"], {"text": "sau khi làm mới"}))["error"] == 0
    again = await token_call(fake, {"grant_type": "refresh_token", "refresh_token": refresh})
    assert again["error"] == -14014 and "already used" in again["error_description"]
    assert "access_token" not in again
    assert [c.ok for c in fake.refresh_calls] == [True, False]
    second = await token_call(fake, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert "access_token" in second  # the new refresh token carries the chain on


async def test_two_concurrent_refreshes_with_one_token_give_one_success(clock: FakeClock) -> None:
    async with FakeZaloOa(clock=clock, refresh_latency=0.05) as slow:
        _, refresh = slow.issue_tokens()
        answers = await asyncio.gather(*(
            token_call(slow, {"grant_type": "refresh_token", "refresh_token": refresh}) for _ in range(2)))
        assert sorted("access_token" in a for a in answers) == [False, True]
        assert [a["error"] for a in answers if "error" in a] == [-14014]
        assert sum(c.ok for c in slow.refresh_calls) == 1


async def test_refresh_needs_the_app_secret_and_app_id(fake: FakeZaloOa) -> None:
    _, refresh = fake.issue_tokens()
    assert (await token_call(fake, {"grant_type": "refresh_token", "refresh_token": refresh}, secret="wrong"))[
        "error"] == -14002
    wrong_app = await token_call(fake, {"grant_type": "refresh_token", "refresh_token": refresh, "app_id": "1"})
    assert wrong_app["error"] == -14001
    ok = await token_call(fake, {"grant_type": "refresh_token", "refresh_token": refresh})
    assert "access_token" in ok  # a refused call does not consume the token


async def test_refresh_token_expires_after_three_months(fake: FakeZaloOa, clock: FakeClock) -> None:
    _, refresh = fake.issue_tokens()
    clock.advance(timedelta(days=91))
    answer = await token_call(fake, {"grant_type": "refresh_token", "refresh_token": refresh})
    assert answer["error"] == -14014 and "expired" in answer["error_description"]


async def test_authorization_code_with_pkce(fake: FakeZaloOa) -> None:
    verifier = "Ab3" * 14 + "x"  # 43 characters
    code = fake.authorize(code_challenge(verifier))
    bad = await token_call(fake, {"grant_type": "authorization_code", "code": code, "code_verifier": "wrong" * 9})
    assert bad["error"] == -14020
    code = fake.authorize(code_challenge(verifier))
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier}
    tokens = await token_call(fake, form)
    assert (await send(fake, tokens["access_token"], {"text": "x"}))["error"] == 0
    assert (await token_call(fake, form))["error"] == -14019  # a code works once


# ---- webhook: taps and typed text ------------------------------------------------------------------------------


async def test_press_delivers_the_payload_as_signed_user_text(fake: FakeZaloOa, webhook: Any) -> None:
    url, received = webhook
    fake.set_webhook(url)
    access, _ = fake.issue_tokens()
    await send(fake, access, buttons_message("Yêu cầu #7", query("Duyệt", "#approve 7"), query("Từ chối", "#rj 7")))
    await send(fake, access, buttons_message("Yêu cầu #8", query("Duyệt", "#approve 8")))
    delivery = await fake.press(USER, "Duyệt")
    assert delivery.status == 200
    [(body, headers)] = received
    event = json.loads(body)
    assert event["event_name"] == "user_send_text" and event["message"]["text"] == "#approve 8"  # the newest
    assert event["sender"] == {"id": USER} and event["recipient"] == {"id": fake.oa_id}
    assert event["app_id"] == fake.app_id and event["message"]["msg_id"] and "callback" not in body
    # the documented formula, computed here independently: mac = sha256(app_id + body + timestamp + OA secret)
    expected = hashlib.sha256((event["app_id"] + body + event["timestamp"] + fake.oa_secret_key).encode()).hexdigest()
    assert headers["X-ZEvent-Signature"] == f"mac={expected}"
    wrong = hashlib.sha256((event["app_id"] + body + event["timestamp"] + "other-secret").encode()).hexdigest()
    assert headers["X-ZEvent-Signature"] != f"mac={wrong}"


async def test_press_of_a_link_or_unknown_button_sends_nothing(fake: FakeZaloOa, webhook: Any) -> None:
    url, received = webhook
    fake.set_webhook(url)
    access, _ = fake.issue_tokens()
    await send(fake, access, buttons_message("x", {"title": "Mở", "type": "oa.open.url",
                                                   "payload": {"url": "https://edudesk.example"}}))
    with pytest.raises(ValueError):
        await fake.press(USER, "Mở")
    with pytest.raises(ValueError):
        await fake.press(USER, "Không có")
    assert received == []


async def test_inject_text_reaches_the_webhook_and_wait_for_sees_it(fake: FakeZaloOa, webhook: Any) -> None:
    url, received = webhook
    fake.set_webhook(url)
    await asyncio.gather(fake.wait_for(lambda: len(fake.deliveries) == 1, timeout=2),
                         fake.inject_text(USER, "Cho em hỏi mật khẩu email"))
    assert json.loads(received[0][0])["message"]["text"] == "Cho em hỏi mật khẩu email"
    with pytest.raises(TimeoutError):
        await fake.wait_for(lambda: len(fake.deliveries) == 2, timeout=0.05)
