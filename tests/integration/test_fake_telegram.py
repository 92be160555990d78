"""The fake Telegram Bot API against the real aiogram Bot: wire format, sendMessage checks, edits, callbacks, limits."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.types import (
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    ReplyParameters,
)

from tests.fakes.telegram import (  # noqa: F401 - fixtures
    DEFAULT_TOKEN,
    FakeTelegram,
    FastAiohttpSession,
    fake_and_bot,
    fake_telegram_bot_fixture,
    fake_telegram_fixture,
)

CHAT = 1001
GROUP = -100123456
SMALL_GROUP = -4242


def keyboard(*buttons: tuple[str, str]) -> InlineKeyboardMarkup:
    """One row of callback buttons (text, data)."""
    return InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text=t, callback_data=d) for t, d in buttons]])


@pytest.fixture
def bot(fake_telegram_bot: Bot) -> Bot:
    """The real aiogram Bot on the default fake."""
    return fake_telegram_bot


# ---- wire format ---------------------------------------------------------------------------------------------


async def test_wire_format_tokens_methods_and_body_kinds(fake_telegram: FakeTelegram) -> None:
    base = f"{fake_telegram.url}/bot{DEFAULT_TOKEN}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{fake_telegram.url}/bot1:WRONG/getMe") as resp:
            assert resp.status == 401
            assert await resp.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
        async with http.post(f"{base}/sendFoo") as resp:
            assert resp.status == 404
            assert await resp.json() == {"ok": False, "error_code": 404, "description": "Not Found: method not found"}
        async with http.get(f"{base}/getme") as resp:
            body = await resp.json()
            assert resp.status == 200 and body["ok"] and body["result"]["is_bot"] is True
        markup = {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
        async with http.post(f"{base}/sendMessage", json={"chat_id": CHAT, "text": "json", "reply_markup": markup}):
            pass
        form = aiohttp.FormData({"chat_id": "-5", "text": "multipart"}, default_to_multipart=True)
        async with http.post(f"{base}/sendMessage", data=form) as resp:
            result = (await resp.json())["result"]
            assert result["chat"] == {"id": -5, "type": "group", "title": "Test group -5"}
    assert [m.text for m in fake_telegram.messages(CHAT)] == ["json"]
    assert fake_telegram.messages(CHAT)[0].reply_markup == markup
    assert fake_telegram.requests_log[-1].content_type == "multipart/form-data"


async def test_aiogram_sends_url_encoded_strings(fake_telegram: FakeTelegram, bot: Bot) -> None:
    await bot.send_message(CHAT, "hi", reply_markup=keyboard(("Go", "go")), disable_notification=False)
    record = fake_telegram.requests_log[-1]
    assert record.content_type == "application/x-www-form-urlencoded"
    assert record.params["chat_id"] == "1001" and record.params["disable_notification"] == "false"
    assert json.loads(record.params["reply_markup"]) == {"inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]}


async def test_wrong_token_is_unauthorized(fake_telegram: FakeTelegram) -> None:
    other = Bot("999:NOPE", session=FastAiohttpSession(api=TelegramAPIServer.from_base(fake_telegram.url)))
    with pytest.raises(TelegramUnauthorizedError):
        await other.get_me()
    await other.session.close()


# ---- sendMessage ---------------------------------------------------------------------------------------------


async def test_send_message_with_inline_keyboard_round_trips(fake_telegram: FakeTelegram, bot: Bot) -> None:
    first = await bot.send_message(
        CHAT, "<b>Ticket</b> #1 &amp; more", parse_mode="HTML", reply_markup=keyboard(("OK", "ok:1"))
    )
    assert isinstance(first, Message)
    assert first.message_id == 1 and first.chat.type == "private" and first.from_user and first.from_user.is_bot
    assert first.text == "Ticket #1 & more"
    assert first.entities and first.entities[0].type == "bold" and first.entities[0].length == 6
    assert first.reply_markup and first.reply_markup.inline_keyboard[0][0].callback_data == "ok:1"
    assert first.html_text == "<b>Ticket</b> #1 &amp; more"
    second = await bot.send_message(GROUP, "in the group", reply_markup=ForceReply(force_reply=True))
    assert second.message_id == 1 and second.chat.type == "supergroup" and second.reply_markup is None
    [stored] = fake_telegram.messages(CHAT)
    assert stored.raw_text == "<b>Ticket</b> #1 &amp; more" and stored.buttons()[0]["callback_data"] == "ok:1"
    assert [c.method for c in fake_telegram.sent] == ["sendMessage", "sendMessage"]
    assert fake_telegram.sent[0].chat_id == CHAT and fake_telegram.sent[0].message_id == 1


async def test_reply_parameters_and_missing_reply_target() -> None:
    async with fake_and_bot(chat_limit=None) as (fake, client):
        update = fake.inject_message(CHAT, CHAT, "question")
        reply = await client.send_message(CHAT, "answer", reply_parameters=ReplyParameters(message_id=1))
        assert reply.reply_to_message and reply.reply_to_message.text == "question"
        assert update["message"]["message_id"] == 1 and reply.message_id == 2
        with pytest.raises(TelegramBadRequest, match="message to be replied not found"):
            await client.send_message(CHAT, "x", reply_to_message_id=99)
        tolerated = ReplyParameters(message_id=99, allow_sending_without_reply=True)
        assert (await client.send_message(CHAT, "x", reply_parameters=tolerated)).reply_to_message is None


async def test_callback_data_limit_is_64_bytes() -> None:
    async with fake_and_bot(chat_limit=None) as (fake, client):
        await client.send_message(CHAT, "fits", reply_markup=keyboard(("A", "é" * 32)))
        with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
            await client.send_message(CHAT, "too long", reply_markup=keyboard(("A", "é" * 32 + "x")))
        assert [m.text for m in fake.messages(CHAT)] == ["fits"]
        assert len(fake.sent) == 1


async def test_buttons_need_text_and_exactly_one_action(bot: Bot) -> None:
    both = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="A", callback_data="a", url="https://example.org")]]
    )
    with pytest.raises(TelegramBadRequest, match="exactly one"):
        await bot.send_message(CHAT, "x", reply_markup=both)
    with pytest.raises(TelegramBadRequest, match="Text buttons are unallowed"):
        await bot.send_message(
            CHAT, "x", reply_markup=InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="A")]])
        )
    bad_url = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="A", url="javascript:alert(1)")]])
    with pytest.raises(TelegramBadRequest, match="BUTTON_URL_INVALID"):
        await bot.send_message(CHAT, "x", reply_markup=bad_url)


@pytest.mark.parametrize(
    ("html", "error"),
    [
        ("<p>x</p>", 'Unsupported start tag "p" at byte offset 0'),
        ("é <br>", 'Unsupported start tag "br" at byte offset 3'),
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<b", "Unclosed start tag at byte offset 0"),
        ('<span class="red">x</span>', 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
    ],
)
async def test_html_is_checked_like_telegram(bot: Bot, html: str, error: str) -> None:
    with pytest.raises(TelegramBadRequest) as caught:
        await bot.send_message(CHAT, html, parse_mode="HTML")
    assert caught.value.message == f"Bad Request: can't parse entities: {error}"


async def test_allowed_html_and_entities() -> None:
    async with fake_and_bot(chat_limit=None) as (fake, client):
        html = (
            "<b>b</b><strong>s</strong><i>i</i><em>e</em><u>u</u><ins>n</ins><s>s</s><strike>k</strike><del>d</del>"
            '<span class="tg-spoiler">p</span><tg-spoiler>q</tg-spoiler><a href="https://e.org/?a=1&amp;b=2">l</a>'
            '<code>c</code><pre><code class="language-python">x = 1</code></pre><blockquote>q</blockquote>'
            '<blockquote expandable>w</blockquote><tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>'
            " &lt;&#33;&#x3f;"
        )
        message = await client.send_message(CHAT, html, parse_mode="HTML")
        assert message.text == "bsieunskdpqlcx = 1qw👍 <!?"
        kinds = [(e.type, e.offset, e.length) for e in message.entities or []]
        assert ("text_link", 11, 1) in kinds and ("pre", 13, 5) in kinds and ("custom_emoji", 20, 2) in kinds
        assert ("expandable_blockquote", 19, 1) in kinds and ("spoiler", 9, 1) in kinds
        entities = {e.type: e for e in message.entities or []}
        assert entities["text_link"].url == "https://e.org/?a=1&b=2" and entities["pre"].language == "python"
        assert message.html_text.startswith("<b>b</b>")
        assert fake.messages(CHAT)[0].text == message.text


async def test_text_length_is_counted_after_entity_parsing() -> None:
    async with fake_and_bot(chat_limit=None) as (fake, client):
        await client.send_message(CHAT, "<b>" + "x" * 4096 + "</b>", parse_mode="HTML")
        await client.send_message(CHAT, "&amp;" * 4096, parse_mode="HTML")
        with pytest.raises(TelegramBadRequest, match="message is too long"):
            await client.send_message(CHAT, "x" * 4097)
        with pytest.raises(TelegramBadRequest, match="message text is empty"):
            await client.send_message(CHAT, "<b> </b>", parse_mode="HTML")
        assert [len(m.text) for m in fake.messages(CHAT)] == [4096, 4096]


# ---- edits, deletes, callbacks -------------------------------------------------------------------------------


async def test_edit_message_text_and_not_modified() -> None:
    async with fake_and_bot(chat_limit=None) as (fake, client):
        sent = await client.send_message(CHAT, "pending", reply_markup=keyboard(("Take", "take")))
        edited = await client.edit_message_text(
            "taken", chat_id=CHAT, message_id=sent.message_id, reply_markup=keyboard(("Take", "take"))
        )
        assert isinstance(edited, Message) and edited.text == "taken" and edited.edit_date is not None
        with pytest.raises(TelegramBadRequest, match="message is not modified: specified new message content"):
            await client.edit_message_text(
                "taken", chat_id=CHAT, message_id=sent.message_id, reply_markup=keyboard(("Take", "take"))
            )
        with pytest.raises(TelegramBadRequest, match="message to edit not found"):
            await client.edit_message_text("x", chat_id=CHAT, message_id=77)
        [stored] = fake.messages(CHAT)
        assert stored.text == "taken" and stored.edited and stored.buttons()
        await client.edit_message_reply_markup(chat_id=CHAT, message_id=sent.message_id)
        assert fake.message(CHAT, sent.message_id).reply_markup is None  # type: ignore[union-attr]
        with pytest.raises(TelegramBadRequest, match="message is not modified"):
            await client.edit_message_reply_markup(chat_id=CHAT, message_id=sent.message_id)
        fake.inject_message(CHAT, CHAT, "mine")
        with pytest.raises(TelegramBadRequest, match="message can't be edited"):
            await client.edit_message_text("x", chat_id=CHAT, message_id=2)
        assert await client.delete_message(CHAT, 2) is True
        with pytest.raises(TelegramBadRequest, match="message to delete not found"):
            await client.delete_message(CHAT, 2)
        assert [c.method for c in fake.sent] == [
            "sendMessage", "editMessageText", "editMessageReplyMarkup", "deleteMessage"
        ]  # fmt: skip


async def test_callback_answers_once(fake_telegram: FakeTelegram, bot: Bot) -> None:
    await bot.send_message(CHAT, "pick", reply_markup=keyboard(("One", "1")))
    query_id = fake_telegram.press(CHAT, CHAT, "One")
    with pytest.raises(TelegramBadRequest, match="MESSAGE_TOO_LONG"):
        await bot.answer_callback_query(query_id, text="x" * 201)
    assert await bot.answer_callback_query(query_id, text="Saved", show_alert=True)
    answer = fake_telegram.answers[query_id]
    assert (answer.text, answer.show_alert) == ("Saved", True) and 0 <= answer.latency < 5
    too_old = "query is too old and response timeout expired or query ID is invalid"
    with pytest.raises(TelegramBadRequest, match=too_old):
        await bot.answer_callback_query(query_id)
    with pytest.raises(TelegramBadRequest, match=too_old):
        await bot.answer_callback_query("12345")
    with pytest.raises(ValueError, match="no button"):
        fake_telegram.inject_callback(CHAT, CHAT, 1, "forged")


async def test_late_callback_answer_is_refused() -> None:
    async with fake_and_bot(callback_timeout=0.05) as (fake, client):
        await client.send_message(CHAT, "pick", reply_markup=keyboard(("One", "1")))
        query_id = fake.press(CHAT, CHAT, "One")
        await asyncio.sleep(0.1)
        with pytest.raises(TelegramBadRequest, match="query is too old"):
            await client.answer_callback_query(query_id)


async def test_commands_chat_action_get_chat_and_blocked_users(fake_telegram: FakeTelegram, bot: Bot) -> None:
    from aiogram.types import BotCommand

    assert await bot.set_my_commands([BotCommand(command="start", description="Begin")])
    assert [c.command for c in await bot.get_my_commands()] == ["start"]
    assert fake_telegram.commands() == [{"command": "start", "description": "Begin"}]
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Bad Command", description="x")])
    assert await bot.delete_my_commands()
    assert await bot.get_my_commands() == []
    assert await bot.send_chat_action(CHAT, "typing")
    fake_telegram.inject_message(CHAT, CHAT, "hi", first_name="Lan", username="lan")
    chat = await bot.get_chat(CHAT)
    assert chat.type == "private" and chat.first_name == "Lan" and chat.username == "lan"
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.get_chat(555)
    fake_telegram.block_chat(CHAT)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(CHAT, "still there?")


async def test_all_texts_sees_every_string_sent(fake_telegram: FakeTelegram, bot: Bot) -> None:
    await bot.send_message(CHAT, "visible <b>&lt;token&gt;</b>", parse_mode="HTML", reply_markup=keyboard(("K", "d:7")))
    with pytest.raises(TelegramBadRequest):
        await bot.send_message(CHAT, "<p>refused</p>", parse_mode="HTML")
    texts = "\n".join(fake_telegram.all_texts())
    assert "visible <token>" in texts and "d:7" in texts and "refused" in texts and "K" in texts
    assert "hunter2" not in texts


# ---- flood limits --------------------------------------------------------------------------------------------


async def test_rate_limit_gives_retry_after() -> None:
    async with fake_and_bot(chat_limit=(1, 0.3)) as (fake, client):
        await client.send_message(CHAT, "one")
        with pytest.raises(TelegramRetryAfter) as caught:
            await client.send_message(CHAT, "two")
        assert caught.value.retry_after == 1
        assert "Too Many Requests: retry after 1" in caught.value.message
        assert fake.count_429 == 1 and fake.count_429_per_chat[CHAT] == 1
        assert fake.count_429() == 1 and fake.count_429(CHAT) == 1 and fake.count_429(CHAT + 1) == 0
        assert [m.text for m in fake.messages(CHAT)] == ["one"]
        status = fake.requests_log[-1]
        assert status.status == 429 and status.response["parameters"] == {"retry_after": 1}
        await asyncio.sleep(0.31)
        await client.send_message(CHAT, "two")
        with pytest.raises(TelegramRetryAfter):
            await client.edit_message_text("two!", chat_id=CHAT, message_id=2)


async def test_retry_after_counts_whole_seconds_until_the_window_frees() -> None:
    async with fake_and_bot(chat_limit=None, group_limit=(1, 60.0)) as (fake, client):
        await client.send_message(GROUP, "one")
        with pytest.raises(TelegramRetryAfter) as caught:
            await client.send_message(GROUP, "two")
        assert 59 <= caught.value.retry_after <= 60


async def test_limits_are_per_chat_and_per_group() -> None:
    async with fake_and_bot(global_limit=None, chat_limit=(1, 10.0), group_limit=(2, 10.0)) as (fake, client):
        await client.send_message(CHAT, "a")
        await client.send_message(CHAT + 1, "b")
        with pytest.raises(TelegramRetryAfter):
            await client.send_message(CHAT, "c")
        await client.send_message(GROUP, "1")
        await client.send_message(GROUP, "2")
        with pytest.raises(TelegramRetryAfter):
            await client.send_message(GROUP, "3")
        await client.send_message(SMALL_GROUP, "other group")
        assert dict(fake.count_429_per_chat) == {CHAT: 1, GROUP: 1}
        assert fake.count_429 == 2


async def test_global_limit_spans_chats() -> None:
    async with fake_and_bot(global_limit=(3, 10.0), chat_limit=None, group_limit=None) as (fake, client):
        for chat_id in (1, 2, -3):
            await client.send_message(chat_id, "x")
        with pytest.raises(TelegramRetryAfter):
            await client.send_message(4, "x")
        fake.reset_limits()
        await client.send_message(4, "x")
        assert fake.count_429 == 1 and len(fake.sent) == 4
