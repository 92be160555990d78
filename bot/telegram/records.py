"""School records in Telegram: taps on Ký ngay, Nhắc tất cả, return and credential decisions, Xác nhận
hoàn tất; commands /ky (my signing turns) and /tiendo (who is blocking, for the leadership)."""

from __future__ import annotations

import html

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from bot.telegram.callbacks import RECORD_ACTIONS, Tap, TapAction
from bot.telegram.context import BotContext
from core.errors import EdudeskError
from core.ports import Button, Card
from core.signing.reminders import blocking, remind_pending
from core.signing.service import NotAllowed, RecordService
from core.staff import Actor, Role
from core.text import local_time


def _records(ctx: BotContext) -> RecordService:
    if ctx.records is None:
        raise EdudeskError("Chức năng học bạ số chưa được bật.", code="records_off")
    return ctx.records


async def on_record_tap(cb: CallbackQuery, callback_data: Tap, edudesk: BotContext, actor: Actor) -> None:
    """A records button: call one service, answer at once (an alert when refused)."""
    tap, ctx = callback_data, edudesk
    try:
        records = _records(ctx)
        if tap.a == TapAction.REC_SIGN:
            session = await records.start_signing(actor, tap.r, tap.x)
            await cb.answer(f"✍️ Đang ký {len(session.steps)} học bạ. Nếu dùng ký số từ xa, hãy xác nhận trên "
                            f"điện thoại.", show_alert=True)
        elif tap.a == TapAction.REC_REMIND:
            if not actor.has(Role.LEADER, Role.HEAD):
                raise await records.refuse(actor, "rec_remind", NotAllowed("Chỉ ban giám hiệu nhắc ký."))
            sent, when = await remind_pending(ctx.settings, ctx.clock, records.queue, actor, tap.r or None)
            later = when > ctx.clock.now()
            await cb.answer(f"🔔 Đã gửi nhắc {sent} giáo viên" + (
                f" (giờ nghỉ: sẽ gửi lúc {local_time(when, ctx.settings.general.timezone)})" if later else "."),
                show_alert=True)
        elif tap.a in (TapAction.REC_RETURN_OK, TapAction.REC_RETURN_NO):
            ret = await records.decide_return(actor, tap.r, tap.a == TapAction.REC_RETURN_OK)
            await cb.answer("✓ Đã duyệt huỷ: học bạ được làm lại và ký lại từ đầu." if ret.state == "approved"
                            else "✓ Không huỷ: học bạ tiếp tục được ký.")
        elif tap.a == TapAction.REC_CONFIRM:
            klass = await records.confirm_class(actor, tap.r)
            await cb.answer(f"✓ Đã xác nhận hoàn tất lớp {klass.name}.")
        elif tap.a in (TapAction.REC_CRED_OK, TapAction.REC_CRED_NO):
            if records.credentials is None:
                raise EdudeskError("Chức năng học bạ số chưa được bật.", code="records_off")
            row = await records.credentials.decide(actor, tap.r, tap.a == TapAction.REC_CRED_OK)
            await cb.answer("✓ Đã duyệt chứng thư số." if row.state == "approved" else "✓ Đã từ chối chứng thư số.")
    except EdudeskError as exc:
        await cb.answer(f"⚠ {exc.message}"[:200], show_alert=True)


async def on_sign_list(message: Message, edudesk: BotContext, actor: Actor) -> None:
    """/ky: the classes where it is the teacher's turn, each with its Ký ngay button."""
    from core.signing.models import SignatureStep, Teacher

    teacher = await Teacher.get_or_none(staff_id=actor.staff_id) if actor.staff_id else None
    if teacher is None:
        await edudesk.chat.send_text(message.chat.id, "Anh/Chị không có trong danh sách giáo viên ký học bạ.")
        return
    turns: dict[tuple[int, int], int] = {}
    for step in await SignatureStep.filter(teacher_id=teacher.id, state="open", record__state="signing") \
            .prefetch_related("record"):
        key = (step.record.klass_id, step.stage)
        turns[key] = turns.get(key, 0) + 1
    if not turns:
        await edudesk.chat.send_text(message.chat.id, "Không có học bạ nào đang chờ Thầy/Cô ký.")
        return
    from core.signing.models import SchoolClass
    from core.signing.turns import role_text

    lines, rows = ["✍️ <b>Học bạ chờ Thầy/Cô ký</b>"], []
    for (class_id, stage), count in sorted(turns.items()):
        klass = await SchoolClass.get(id=class_id)
        lines.append(f"• {html.escape(klass.name)} — {await role_text(teacher.id, class_id, stage)}: {count} học bạ")
        rows.append((Button(f"✍️ Ký ngay {klass.name}", "rec_sign", class_id, arg=stage),))
    await edudesk.chat.post_card(str(message.chat.id), Card("\n".join(lines), tuple(rows)))


async def on_progress(message: Message, edudesk: BotContext, actor: Actor) -> None:
    """/tiendo: per class and stage, who is blocking which records; one button reminds everyone."""
    if not actor.has(Role.LEADER, Role.HEAD):
        await edudesk.chat.send_text(message.chat.id, "Chỉ ban giám hiệu xem tiến độ ký học bạ.")
        return
    rows = await blocking()
    if not rows:
        await edudesk.chat.send_text(message.chat.id, "Không còn ai đang chờ ký học bạ.")
        return
    text = "📊 <b>Tiến độ ký học bạ</b>\n" + "\n".join(html.escape(b.text()) for b in rows)
    card = Card(text[:4000], ((Button("🔔 Nhắc tất cả", "rec_remind", 0),),))
    await edudesk.chat.post_card(str(message.chat.id), card)


def make_router() -> Router:
    """A fresh router with this module's handlers."""
    r = Router(name="records")
    r.callback_query.register(on_record_tap, Tap.filter(F.a.in_(RECORD_ACTIONS)))
    r.message.register(on_sign_list, Command("ky"))
    r.message.register(on_progress, Command("tiendo"))
    return r
