"""School records in Telegram: taps on Ký ngay, Xem danh sách, Báo sai sót (the reason typed as a reply to the
bot's prompt), Nhắc tất cả, return and credential decisions, Xác nhận hoàn tất; commands /ky (my signing
turns) and /tiendo (who is blocking, for the leadership)."""

from __future__ import annotations

import html
from datetime import datetime

from aiogram import F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State as FsmState
from aiogram.fsm.state import StatesGroup
from aiogram.types import CallbackQuery, ForceReply, Message

from edudesk.bot.telegram.callbacks import RECORD_ACTIONS, Tap, TapAction
from edudesk.bot.telegram.context import BotContext
from edudesk.bot.telegram.decisions import TYPING_TIMEOUT
from edudesk.core.errors import EdudeskError
from edudesk.core.people.staff import Actor
from edudesk.core.ports import Button, Card
from edudesk.core.signing.models import SchoolClass, SchoolRecord, SignatureStep
from edudesk.core.signing.pin import PinNotSet, PinRequired
from edudesk.core.signing.service import RecordService
from edudesk.core.signing.turns import role_text, sign_page, teacher_needs_pin
from edudesk.core.signing.usecases import my_turns, signer_for
from edudesk.core.text import local_time

STEP_MARKS = {"open": "chờ Thầy/Cô ký", "signed": "✓ đã ký", "waiting": "chưa đến lượt"}
RECORD_MARKS = {"returned": "đang chờ xử lý báo sai sót", "signed": "đã ký xong", "cancelled": "đã huỷ"}


class Reporting(StatesGroup):
    """Waiting for "HS003 the error" as a reply to the bot's Báo sai sót prompt."""

    reason = FsmState()


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
            try:
                session = await records.start_signing(actor, tap.r, tap.x)  # no PIN: a held key is never used
            except (PinRequired, PinNotSet) as exc:  # where and how to sign, in full (an alert holds 200 chars)
                await cb.answer("Cần mã PIN ký: Thầy/Cô ký trên trang quản trị — xem tin nhắn bên dưới.",
                                show_alert=True)
                chat = cb.message.chat.id if cb.message is not None else cb.from_user.id
                await ctx.chat.send_text(chat, html.escape(exc.in_words(ctx.settings.general.language)))
                return
            await cb.answer(f"Đang ký {len(session.steps)} học bạ. Nếu dùng ký số từ xa, hãy xác nhận trên "
                            f"điện thoại.", show_alert=True)
        elif tap.a == TapAction.REC_REMIND:
            sent, when = await records.remind_all(actor, tap.r or None)
            later = when > ctx.clock.now()
            await cb.answer(f"Đã gửi nhắc {sent} giáo viên" + (
                f" (giờ nghỉ: sẽ gửi lúc {local_time(when, ctx.settings.general.timezone)})" if later else "."),
                show_alert=True)
        elif tap.a in (TapAction.REC_RETURN_OK, TapAction.REC_RETURN_NO):
            ret = await records.decide_return(actor, tap.r, tap.a == TapAction.REC_RETURN_OK)
            await cb.answer("✓ Đã duyệt huỷ: hãy tải lên bản học bạ đã sửa (trang quản trị, Học bạ số → Sửa, thu "
                            "hồi, điều chỉnh); học bạ được ký lại từ đầu." if ret.state == "approved"
                            else "✓ Không huỷ: học bạ tiếp tục được ký.")
        elif tap.a == TapAction.REC_CONFIRM:
            klass = await records.confirm_class(actor, tap.r)
            await cb.answer(f"✓ Đã xác nhận hoàn tất lớp {klass.name}.")
        elif tap.a in (TapAction.REC_CRED_OK, TapAction.REC_CRED_NO):
            row = await records.decide_credential(actor, tap.r, tap.a == TapAction.REC_CRED_OK)
            await cb.answer("✓ Đã duyệt chứng thư số." if row.state == "approved" else "✓ Đã từ chối chứng thư số.")
    except EdudeskError as exc:
        await cb.answer(f"⚠ {exc.in_words(ctx.settings.general.language)}"[:200], show_alert=True)


async def _class_for(records: RecordService, actor: Actor, class_id: int, action: str) -> tuple[SchoolClass, int]:
    """The class and the actor's teacher id, when they sign its records or lead the school (personal data)."""
    klass, teacher = await records.class_for(actor, class_id, action)
    return klass, teacher.id if teacher is not None else 0


def chunks(lines: list[str], limit: int = 4000) -> list[str]:
    """Lines joined into messages of at most `limit` characters (Telegram takes 4,096)."""
    out, current = [], ""
    for line in lines:
        if current and len(current) + 1 + len(line) > limit:
            out.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line[:limit]
    return [*out, current] if current else out


async def on_list_tap(cb: CallbackQuery, callback_data: Tap, edudesk: BotContext, actor: Actor) -> None:
    """Xem danh sách: the class's records with the state of the teacher's own step in each."""
    try:
        records = _records(edudesk)
        klass, teacher_id = await _class_for(records, actor, callback_data.r, "rec_list")
    except EdudeskError as exc:
        await cb.answer(f"⚠ {exc.in_words(edudesk.settings.general.language)}"[:200], show_alert=True)
        return
    mine = {s["record_id"]: s["state"] for s in await SignatureStep.filter(
        teacher_id=teacher_id, stage=callback_data.x, record__klass_id=klass.id).values("record_id", "state")}
    lines = [f"<b>Học bạ lớp {html.escape(klass.name)}</b> ({html.escape(klass.year)})"]
    for r in await SchoolRecord.filter(klass_id=klass.id).order_by("student_code"):
        mark = RECORD_MARKS.get(r.state) or STEP_MARKS.get(mine.get(r.id, ""), f"{r.signatures} chữ ký")
        lines.append(f"• {html.escape(r.student_code)} {html.escape(r.student_name)} — {mark}")
    await cb.answer()
    chat = cb.message.chat.id if cb.message is not None else cb.from_user.id
    for text in chunks(lines):
        await edudesk.chat.send_text(chat, text)


async def on_report_tap(cb: CallbackQuery, callback_data: Tap, edudesk: BotContext, actor: Actor,
                        state: FSMContext) -> None:
    """Báo sai sót: ask for the student code and the error, as a reply to the bot's prompt."""
    try:
        klass, _ = await _class_for(_records(edudesk), actor, callback_data.r, "rec_return")
    except EdudeskError as exc:
        await cb.answer(f"⚠ {exc.in_words(edudesk.settings.general.language)}"[:200], show_alert=True)
        return
    await cb.answer("Trả lời tin nhắn của bot: mã học sinh và sai sót.")
    chat = cb.message.chat.id if cb.message is not None else cb.from_user.id
    prompt = await edudesk.chat.send_text(
        chat, f"Báo sai sót học bạ lớp <b>{html.escape(klass.name)}</b>: trả lời tin này với mã học sinh và sai "
              f"sót, ví dụ «HS003 Sai điểm Toán học kì II». Học bạ đó dừng ký cho đến khi quản trị viên xử lý.",
        reply_markup=ForceReply(selective=True, input_field_placeholder="HS003 Sai điểm …"))
    await state.set_state(Reporting.reason)
    await state.update_data(class_id=klass.id, prompt=prompt, asked_at=edudesk.clock.now().isoformat())


async def on_report_reason(message: Message, edudesk: BotContext, actor: Actor, state: FSMContext) -> None:
    """The reply to the Báo sai sót prompt: "<student code> <reason>"; an unknown code may be typed again."""
    data = await state.get_data()
    if edudesk.clock.now() - datetime.fromisoformat(data["asked_at"]) > TYPING_TIMEOUT:
        await state.clear()
        raise SkipHandler
    reply_to = message.reply_to_message
    if reply_to is None or reply_to.message_id != data.get("prompt") or (message.text or "").startswith("/"):
        raise SkipHandler
    code, _, reason = (message.text or "").strip().partition(" ")
    record = await SchoolRecord.get_or_none(klass_id=int(data["class_id"]), student_code__iexact=code)
    if record is None:
        await edudesk.chat.send_text(message.chat.id, f"⚠ Không có học sinh mã «{html.escape(code[:40])}» trong "
                                     "lớp; hãy trả lời lại tin nhắn trên với đúng mã.",
                                     reply_to_message_id=message.message_id)
        return
    try:
        await _records(edudesk).return_record(actor, record.id, reason)
    except EdudeskError as exc:
        said = exc.in_words(edudesk.settings.general.language)
        await edudesk.chat.send_text(message.chat.id, f"⚠ {html.escape(said)}",
                                     reply_to_message_id=message.message_id)
        if exc.code == "reason_missing":
            return  # the prompt still stands
    else:
        await edudesk.chat.send_text(
            message.chat.id, f"✓ Đã báo sai sót học bạ {html.escape(record.student_code)} — "
                             f"{html.escape(record.student_name)}; quản trị viên sẽ duyệt huỷ để làm lại.",
            reply_to_message_id=message.message_id)
    await state.clear()


async def on_sign_list(message: Message, edudesk: BotContext, actor: Actor) -> None:
    """/ky: the classes where it is the teacher's turn, each with its Ký ngay button."""
    teacher = await signer_for(actor)
    if teacher is None:
        await edudesk.chat.send_text(message.chat.id, "Anh/Chị không có trong danh sách giáo viên ký học bạ.")
        return
    turns = {(t.klass.id, t.stage): t.to_sign for t in await my_turns(actor)}
    if not turns:
        await edudesk.chat.send_text(message.chat.id, "Không có học bạ nào đang chờ Thầy/Cô ký.")
        return
    lines, rows = ["<b>Học bạ chờ Thầy/Cô ký</b>"], []
    pin = await teacher_needs_pin(teacher.id)
    if pin:
        lines.append("Chứng thư số của Thầy/Cô lưu trên máy chủ: Thầy/Cô ký trên trang quản trị với mã PIN ký.")
    for (class_id, stage), count in sorted(turns.items()):
        klass = await SchoolClass.get(id=class_id)
        role = html.escape(await role_text(teacher.id, class_id, stage))
        lines.append(f"• {html.escape(klass.name)} — {role}: {count} học bạ")
        if pin and edudesk.settings.web.public_url:  # a key the server holds: the button opens the console's page
            rows.append((Button(f"Ký ngay {klass.name}", TapAction.NOOP, 0, url=sign_page(edudesk.settings, class_id,
                                                                                      stage)),))
        else:
            rows.append((Button(f"Ký ngay {klass.name}", TapAction.REC_SIGN, class_id, arg=stage),))
    await edudesk.chat.post_card(str(message.chat.id), Card("\n".join(lines), tuple(rows)))


async def on_progress(message: Message, edudesk: BotContext, actor: Actor) -> None:
    """/tiendo: per class and stage, who is blocking which records; one button reminds everyone."""
    try:
        rows = await _records(edudesk).progress(actor)
    except EdudeskError as exc:
        await edudesk.chat.send_text(message.chat.id, html.escape(exc.in_words(edudesk.settings.general.language)))
        return
    if not rows:
        await edudesk.chat.send_text(message.chat.id, "Không còn ai đang chờ ký học bạ.")
        return
    text = "<b>Tiến độ ký học bạ</b>\n" + "\n".join(html.escape(b.text()) for b in rows)
    card = Card(text[:4000], ((Button("Nhắc tất cả", TapAction.REC_REMIND, 0),),))
    await edudesk.chat.post_card(str(message.chat.id), card)


def make_router() -> Router:
    """A fresh router with this module's handlers."""
    r = Router(name="records")
    r.callback_query.register(on_list_tap, Tap.filter(F.a == TapAction.REC_LIST))
    r.callback_query.register(on_report_tap, Tap.filter(F.a == TapAction.REC_REPORT))
    r.callback_query.register(on_record_tap, Tap.filter(F.a.in_(RECORD_ACTIONS)))
    r.message.register(on_report_reason, Reporting.reason, F.text)
    r.message.register(on_sign_list, Command("ky"))
    r.message.register(on_progress, Command("tiendo"))
    return r
