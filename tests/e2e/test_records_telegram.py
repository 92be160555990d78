"""Xem danh sách and Báo sai sót inside Telegram, for schools whose web console is not reachable from a
phone (no [web].public_url): the list of the class in the chat, the error typed as a reply to the bot's
prompt, the record stopped and the admin asked; strangers and stray messages are refused or ignored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edudesk.app import App
from edudesk.core.models import AuditEvent
from edudesk.core.people.models import Staff
from edudesk.core.signing.models import RecordReturn, SchoolRecord
from edudesk.core.signing.pki import DemoPki
from tests.fakes.telegram import FakeTelegram
from tests.records_kit import RecordsKit, records_settings, small_roster

pytestmark = [pytest.mark.db, pytest.mark.slow]

HEAD_CHAT, STRANGER = -1002002, 6100


@pytest.fixture
async def world(app_factory: Any, settings_factory: Any, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[RecordsKit, FakeTelegram]]:
    fake = FakeTelegram()
    await fake.start()
    pki = DemoPki.create()
    monkeypatch.setenv("EDUDESK_TELEGRAM_TOKEN", fake.token)
    settings = settings_factory(records=records_settings(tmp_path, pki, notice_delay_seconds=0.2),
                                web={"enabled": False},
                                telegram={"enabled": True, "api_server": fake.url, "head_chat_id": HEAD_CHAT})
    app: App = await app_factory(settings)
    kit = RecordsKit(app, pki, app.clock, small_roster(3))  # type: ignore[arg-type]
    await kit.load()
    await Staff.create(name="Giáo viên lớp khác", email="khac@thpt.edu.vn", roles=["teacher"], telegram_id=STRANGER,
                       created_at=app.clock.now())
    task = asyncio.get_running_loop().create_task(app.supervisor().run())  # noqa: TID251 - test harness
    await app.records.start_class(kit.class_id)
    yield kit, fake
    app.worker.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await fake.stop()


def newest(fake: FakeTelegram, chat: int, text: str) -> Any:
    return next((m for m in reversed(fake.bot_messages(chat)) if text in m.text), None)


async def test_list_and_report_an_error_from_the_chat(world: tuple[RecordsKit, FakeTelegram]) -> None:
    kit, fake = world
    chat = kit.telegram_ids["GV03"]
    notice = await fake.wait_for(lambda: newest(fake, chat, "Mời Thầy/Cô ký"), 15.0)
    buttons = {b["text"]: b for b in notice.buttons()}
    assert {"Ký ngay", "Xem danh sách", "Báo sai sót"} <= set(buttons)
    assert all("url" not in b for b in buttons.values()), "no public console address: taps, not links"

    fake.press(chat, chat, "Xem danh sách")
    listing = await fake.wait_for(lambda: newest(fake, chat, "Học bạ lớp 10A1"), 10.0)
    assert [line for line in listing.text.splitlines() if line.startswith("•")] == [
        f"• HS00{i} Học Sinh Số {i} — chờ Thầy/Cô ký" for i in (1, 2, 3)]

    fake.press(chat, chat, "Báo sai sót")
    prompt = await fake.wait_for(lambda: newest(fake, chat, "trả lời tin này với mã học sinh"), 10.0)
    [sent] = [c for c in fake.sent_calls("sendMessage", chat) if c.message_id == prompt.message_id]
    markup = sent.reply_markup if isinstance(sent.reply_markup, dict) else {}
    assert markup.get("force_reply") is True, sent.params  # the reply box opens on the teacher's phone
    fake.inject_message(chat, chat, "Em nhầm rồi")  # not a reply to the prompt: not taken as the report
    fake.inject_message(chat, chat, "HS009 Sai điểm", reply_to_message_id=prompt.message_id)
    await fake.wait_for(lambda: newest(fake, chat, "Không có học sinh mã «HS009»"), 10.0)
    fake.inject_message(chat, chat, "hs002 Sai điểm <Hoá> & Lý học kì II", reply_to_message_id=prompt.message_id)
    await fake.wait_for(lambda: newest(fake, chat, "✓ Đã báo sai sót học bạ HS002"), 10.0)
    record = await SchoolRecord.get(klass_id=kit.class_id, student_code="HS002")
    assert record.state == "returned"
    ret = await RecordReturn.get(record_id=record.id)
    assert ret.reason == "Sai điểm <Hoá> & Lý học kì II" and ret.state == "open"
    card = await fake.wait_for(lambda: newest(fake, HEAD_CHAT, "Báo sai sót học bạ"), 10.0)
    assert "Lý do: Sai điểm <Hoá> & Lý học kì II" in card.text  # escaped for Telegram, shown as typed
    assert "Duyệt huỷ, làm lại" in [b["text"] for b in card.buttons()]
    assert len([r for r in await RecordReturn.all()]) == 1  # the stray message made nothing

    # The list shows the stopped record; a second reply to the old prompt is not taken any more.
    fake.inject_message(chat, chat, "HS001 Sai tên", reply_to_message_id=prompt.message_id)
    fake.press(chat, chat, "Xem danh sách")
    await fake.wait_for(lambda: "HS002 Học Sinh Số 2 — đang chờ xử lý báo sai sót" in
                        (newest(fake, chat, "Học bạ lớp 10A1") or notice).text, 10.0)
    assert await RecordReturn.all().count() == 1


async def test_a_stranger_cannot_list_or_report(world: tuple[RecordsKit, FakeTelegram]) -> None:
    kit, fake = world
    chat = kit.telegram_ids["GV01"]
    notice = await fake.wait_for(lambda: newest(fake, chat, "Mời Thầy/Cô ký"), 15.0)
    listing = next(b for b in notice.buttons() if b["text"] == "Xem danh sách")["callback_data"]
    report = next(b for b in notice.buttons() if b["text"] == "Báo sai sót")["callback_data"]
    fake.inject_message(STRANGER, STRANGER, "/start")  # the stranger's own chat with the bot
    await asyncio.sleep(0.5)
    stranger_msg = fake.messages(STRANGER)[-1].message_id
    for data in (listing, report):  # the same buttons, forged into the stranger's chat
        query = fake.inject_callback(STRANGER, STRANGER, stranger_msg, data, check_button=False)
        answer = await fake.wait_for(lambda query=query: fake.answers.get(query), 10.0)
        assert "không ký học bạ của lớp này" in (answer.text or "")
    assert not [m for m in fake.bot_messages(STRANGER) if "Học Sinh Số" in m.text]
    refused = await AuditEvent.filter(action="records_refused").values_list("detail", flat=True)
    assert {d["action"] for d in refused} >= {"rec_list", "rec_return"}
