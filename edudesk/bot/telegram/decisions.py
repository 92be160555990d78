"""Taps on card buttons: parse the CallbackData, call one service, answer at once (alert on refusal)."""

from __future__ import annotations

import contextlib
import html
import logging
from datetime import datetime, timedelta

from aiogram import F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.exceptions import TelegramBadRequest
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State as FsmState
from aiogram.fsm.state import StatesGroup
from aiogram.types import CallbackQuery, ForceReply, Message

from edudesk.bot.cards import build_card, confirm_card, load_view, picker_card, preset
from edudesk.bot.telegram.callbacks import Tap, TapAction
from edudesk.bot.telegram.chat import TelegramChat
from edudesk.bot.telegram.context import BotContext
from edudesk.core.chats.models import ChatCard
from edudesk.core.errors import EdudeskError
from edudesk.core.people.access import Permission, require
from edudesk.core.people.staff import Actor
from edudesk.core.ports import Button, Card
from edudesk.core.requests.rows import ConfirmNeeded
from edudesk.core.requests.service import Action
from edudesk.core.words import words

log = logging.getLogger(__name__)
TYPING_TIMEOUT = timedelta(minutes=10)  # a prompt for a typed reason is answered within this, or forgotten


class Typing(StatesGroup):
    """Waiting for a typed reason (reject) or question (ask for more), as a reply to the bot's prompt."""

    reason = FsmState()


async def _audience(chat_id: int, request_id: int) -> str:
    card = await ChatCard.get_or_none(surface=TelegramChat.surface, chat=str(chat_id), request_id=request_id)
    return card.audience if card else "office"


async def _act(cb: CallbackQuery, ctx: BotContext, actor: Actor, action: str, tap: Tap, reason: str = "") -> None:
    await ctx.services.act(tap.r, action, actor, reason=reason, version=tap.v)
    w = words(ctx.settings.general.language)
    await cb.answer("✓ " + w("cmd.recorded_short", action=w.label("action", Action(action))))


async def _edit(cb: CallbackQuery, ctx: BotContext, card: Card) -> None:
    if cb.message is not None:
        await ctx.chat.edit_card(str(cb.message.chat.id), str(cb.message.message_id), card, interactive=True)


async def on_tap(cb: CallbackQuery, callback_data: Tap, edudesk: BotContext, actor: Actor,
                 state: FSMContext) -> None:
    """Every card button lands here; errors become an alert for the person who tapped."""
    tap, ctx, a = callback_data, edudesk, callback_data.a
    try:
        if a is TapAction.APPROVE:
            try:
                await _act(cb, ctx, actor, a.value, tap)
            except ConfirmNeeded as ask:  # a ✗ against the registry: the card asks once more, naming it
                await cb.answer()
                await _edit(cb, ctx, confirm_card(await load_view(tap.r), ask.lines[ctx.settings.general.language
                                                  if ctx.settings.general.language == "en" else "vi"],
                                                  ctx.settings, ctx.clock.now()))
        elif a is TapAction.APPROVE_CONFIRM:
            await ctx.services.act(tap.r, Action.APPROVE, actor, version=tap.v, confirmed=True)
            w = words(ctx.settings.general.language)
            await cb.answer("✓ " + w("cmd.recorded_short", action=w.label("action", Action.APPROVE)))
        elif a is TapAction.PROVISION:
            await _act(cb, ctx, actor, a.value, tap)
        elif a is TapAction.KEEP_ACCOUNT:
            await ctx.services.rows.keep_account(tap.r, tap.x + 1, actor, tap.v)
            await cb.answer(words(ctx.settings.general.language)("cmd.kept", id=tap.r, row=tap.x + 1))
        elif a in (TapAction.REJECT, TapAction.ASK_INFO):
            await ctx.services.check(tap.r, a.value, actor, tap.v)
            await cb.answer()
            await _edit(cb, ctx, picker_card(await load_view(tap.r), a.value, ctx.settings, ctx.clock.now()))
        elif a in (TapAction.PICK_REJECT, TapAction.PICK_ASK_INFO):
            action = a.value.removeprefix("pick_")
            await _act(cb, ctx, actor, action, tap, preset(ctx.settings, action, tap.x))
        elif a in (TapAction.TYPE_REJECT, TapAction.TYPE_ASK_INFO):
            await _ask_for_text(cb, ctx, actor, tap, a.value.removeprefix("type_"), state)
        elif a in (TapAction.BACK, TapAction.PAGE):
            await require(actor, Permission.REQUESTS, f"tap:{a.value}:{tap.r}", surface="telegram", clock=ctx.clock,
                          language=ctx.settings.general.language)  # a card shows personal data
            view = await load_view(tap.r)
            audience = await _audience(cb.message.chat.id, tap.r) if cb.message else "office"
            await cb.answer()
            await _edit(cb, ctx, build_card(view, audience, ctx.settings, ctx.clock.now(),
                                            page=tap.x if a is TapAction.PAGE else 0))
        elif a is TapAction.REASSIGN_PICK:
            await _reassign_picker(cb, ctx, actor, tap)
        elif a is TapAction.REASSIGN:
            await ctx.services.reassign(tap.r, tap.x, actor)
            await cb.answer("✓ " + words(ctx.settings.general.language)("cmd.reassigned"))
        elif a is TapAction.SEND_CONFIRM:
            sent = await ctx.services.send_confirmation(tap.r, actor, tap.v)
            await cb.answer(("✓ " + sent.text)[:200], show_alert=True)
        else:
            await cb.answer()
    except EdudeskError as exc:
        await _answer_once(cb, exc.in_words(ctx.settings.general.language)[:200])
    except Exception:
        # Never leave the person with a spinning button: say so, and let the error be logged.
        await _answer_once(cb, "Có lỗi hệ thống; vui lòng thử lại sau ít phút.")
        raise


async def _answer_once(cb: CallbackQuery, text: str) -> None:
    with contextlib.suppress(TelegramBadRequest):  # answered already (the error came after the answer)
        await cb.answer(text, show_alert=True)


async def _ask_for_text(cb: CallbackQuery, ctx: BotContext, actor: Actor, tap: Tap, action: str,
                        state: FSMContext) -> None:
    await ctx.services.check(tap.r, action, actor, tap.v)
    await cb.answer("Nhập nội dung bằng cách trả lời tin nhắn của bot.")
    if cb.message is None:
        return
    what = "lý do từ chối" if action == "reject" else "nội dung cần bổ sung"
    # A mention of the person makes the selective ForceReply open the reply box for them alone.
    who = f'<a href="tg://user?id={cb.from_user.id}">{html.escape(actor.name)}</a>'
    prompt = await ctx.chat.send_text(cb.message.chat.id, f"{who}: nhập {what} cho YC-{tap.r}:",
                                      reply_markup=ForceReply(selective=True, input_field_placeholder=what[:64]))
    await state.set_state(Typing.reason)
    await state.update_data(request_id=tap.r, version=tap.v, action=action, prompt=prompt,
                            asked_at=ctx.clock.now().isoformat())


async def _reassign_picker(cb: CallbackQuery, ctx: BotContext, actor: Actor, tap: Tap) -> None:
    choices = await ctx.services.reassign_choices(tap.r, actor)  # the rule lives in the use case
    rows = tuple((Button(s.name, TapAction.REASSIGN, tap.r, tap.v, s.id),) for s in choices)
    await cb.answer()
    text = cb.message.html_text if cb.message is not None and hasattr(cb.message, "html_text") else f"YC-{tap.r}"
    nobody = ((Button("Chưa có cán bộ nào", TapAction.NOOP, tap.r),),)
    await _edit(cb, ctx, Card(f"{text}\n\n<b>Giao cho:</b>", rows or nobody))


async def on_reason(message: Message, edudesk: BotContext, actor: Actor, state: FSMContext) -> None:
    """A reply to the bot's prompt: the typed reason or question, applied with the card version then seen.

    Anything else (another message in the group, a command) is not taken as the reason; a prompt older
    than TYPING_TIMEOUT is forgotten.
    """
    data = await state.get_data()
    asked_at = datetime.fromisoformat(data.get("asked_at", "1970-01-01T00:00:00+00:00"))
    if edudesk.clock.now() - asked_at > TYPING_TIMEOUT:
        await state.clear()
        raise SkipHandler
    reply_to = message.reply_to_message
    if reply_to is None or reply_to.message_id != data.get("prompt") or (message.text or "").startswith("/"):
        raise SkipHandler
    await state.clear()
    try:
        await edudesk.services.act(int(data["request_id"]), data["action"], actor, reason=message.text or "",
                                   version=int(data["version"]))
        await edudesk.chat.send_text(message.chat.id, f"✓ Đã ghi nhận cho YC-{data['request_id']}.",
                                     reply_to_message_id=message.message_id)
    except EdudeskError as exc:
        said = exc.in_words(edudesk.settings.general.language)
        await edudesk.chat.send_text(message.chat.id, f"⚠ {html.escape(said)}",
                                     reply_to_message_id=message.message_id)


def make_router() -> Router:
    """A fresh router with this module's handlers (a router attaches to one dispatcher only)."""
    r = Router(name="decisions")
    r.callback_query.register(on_tap, Tap.filter())
    r.message.register(on_reason, Typing.reason, F.text)
    return r
