"""Taps on card buttons: parse the CallbackData, call one service, answer at once (alert on refusal)."""

from __future__ import annotations

import logging

from aiogram import F, Router
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State as FsmState
from aiogram.fsm.state import StatesGroup
from aiogram.types import CallbackQuery, ForceReply, Message

from bot.cards import build_card, load_view, picker_card, preset
from bot.telegram.callbacks import Tap
from bot.telegram.context import BotContext
from core.errors import EdudeskError
from core.models import ChatCard, Staff
from core.ports import Button, Card
from core.services import ACTION_LABELS, Action
from core.staff import Actor, Role

log = logging.getLogger(__name__)


class Typing(StatesGroup):
    """Waiting for a typed reason (reject) or question (ask for more), as a reply in the same chat."""

    reason = FsmState()


async def _audience(chat_id: int, request_id: int) -> str:
    card = await ChatCard.get_or_none(surface="telegram", chat=str(chat_id), request_id=request_id)
    return card.audience if card else "office"


async def _act(cb: CallbackQuery, ctx: BotContext, actor: Actor, action: str, tap: Tap, reason: str = "") -> None:
    await ctx.services.act(tap.r, action, actor, reason=reason, version=tap.v)
    await cb.answer(f"✓ Đã ghi nhận: {ACTION_LABELS[Action(action)]}")


async def _edit(cb: CallbackQuery, ctx: BotContext, card: Card) -> None:
    if cb.message is not None:
        await ctx.chat.edit_card(str(cb.message.chat.id), str(cb.message.message_id), card, interactive=True)


async def on_tap(cb: CallbackQuery, callback_data: Tap, edudesk: BotContext, actor: Actor,
                 state: FSMContext) -> None:
    """Every card button lands here; errors become an alert for the person who tapped."""
    tap, ctx = callback_data, edudesk
    try:
        if tap.a in ("approve", "provision"):
            await _act(cb, ctx, actor, tap.a, tap)
        elif tap.a in ("reject", "ask_info"):
            await ctx.services.check(tap.r, tap.a, actor, tap.v)
            await cb.answer()
            await _edit(cb, ctx, picker_card(await load_view(tap.r), tap.a, ctx.settings, ctx.clock.now()))
        elif tap.a in ("pick_reject", "pick_ask_info"):
            action = tap.a.removeprefix("pick_")
            await _act(cb, ctx, actor, action, tap, preset(ctx.settings, action, tap.x))
        elif tap.a in ("type_reject", "type_ask_info"):
            action = tap.a.removeprefix("type_")
            await ctx.services.check(tap.r, action, actor, tap.v)
            await state.set_state(Typing.reason)
            await state.update_data(request_id=tap.r, version=tap.v, action=action)
            await cb.answer("Nhập nội dung bằng cách trả lời tin nhắn của bot.")
            if cb.message is not None:
                what = "lý do từ chối" if action == "reject" else "nội dung cần bổ sung"
                await ctx.chat.send_text(cb.message.chat.id, f"{actor.name}: nhập {what} cho YC-{tap.r}:",
                                         reply_markup=ForceReply(selective=True, input_field_placeholder=what))
        elif tap.a in ("back", "page"):
            view = await load_view(tap.r)
            audience = await _audience(cb.message.chat.id, tap.r) if cb.message else "office"
            await cb.answer()
            await _edit(cb, ctx, build_card(view, audience, ctx.settings, ctx.clock.now(),
                                            page=tap.x if tap.a == "page" else 0))
        elif tap.a == "reassign_pick":
            await _reassign_picker(cb, ctx, actor, tap)
        elif tap.a == "reassign":
            await ctx.services.reassign(tap.r, tap.x, actor)
            await cb.answer("✓ Đã giao lại")
        else:
            raise await ctx.services.refuse(actor, tap.a, tap.r, EdudeskError("Nút không hợp lệ.", code="bad_action"))
    except EdudeskError as exc:
        await cb.answer(exc.message[:200], show_alert=True)


async def _reassign_picker(cb: CallbackQuery, ctx: BotContext, actor: Actor, tap: Tap) -> None:
    if not actor.has(Role.HEAD):
        raise await ctx.services.refuse(actor, "reassign", tap.r, EdudeskError(
            "Chỉ trưởng bộ phận mới giao lại được yêu cầu.", code="not_allowed"))
    staff = [s for s in await Staff.filter(active=True).order_by("name")
             if {"office", "technical"} & set(s.roles or [])]
    rows = tuple((Button(f"👤 {s.name}", "reassign", tap.r, tap.v, s.id),) for s in staff[:20])
    await cb.answer()
    text = cb.message.html_text if cb.message is not None and hasattr(cb.message, "html_text") else f"YC-{tap.r}"
    await _edit(cb, ctx, Card(f"{text}\n\n<b>Giao cho:</b>", rows or ((Button("Chưa có cán bộ nào", "noop", tap.r),),)))


async def on_reason(message: Message, edudesk: BotContext, actor: Actor, state: FSMContext) -> None:
    """The typed reason or question: applied with the card version the person saw."""
    data = await state.get_data()
    await state.clear()
    try:
        await edudesk.services.act(int(data["request_id"]), data["action"], actor, reason=message.text or "",
                                   version=int(data["version"]))
        await edudesk.chat.send_text(message.chat.id, f"✓ Đã ghi nhận cho YC-{data['request_id']}.",
                                     reply_to_message_id=message.message_id)
    except EdudeskError as exc:
        await edudesk.chat.send_text(message.chat.id, f"⚠ {exc.message}", reply_to_message_id=message.message_id)


def make_router() -> Router:
    """A fresh router with this module's handlers (a router attaches to one dispatcher only)."""
    r = Router(name="decisions")
    r.callback_query.register(on_tap, Tap.filter())
    r.message.register(on_reason, Typing.reason, F.text)
    return r
