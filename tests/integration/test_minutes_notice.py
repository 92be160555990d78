"""Minutes (biên bản thu hồi / điều chỉnh học bạ) get their own "sign now" wording: the leadership is told which
minutes, about whose record, of which class, why, and what follows, with a link to the minutes' PDF — in the
chat notice and in the mail that stands in for it — while a record's turn keeps the records' wording. Real
database, jobs, signatures and the maildir outbox; chats are not linked, so every notice goes by mail."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edudesk.core.models import Job
from edudesk.core.ports import FakeClock
from edudesk.core.signing.changes import start_change
from edudesk.core.signing.lifemodels import ChangeKind
from edudesk.core.signing.models import SchoolRecord, Teacher
from edudesk.core.signing.pki import DemoPki
from tests.integration.test_records_lifecycle import START, VICE, corrected, leadership_roster, sign_all
from tests.records_kit import ADMIN, RecordsKit, records_settings

pytestmark = pytest.mark.db

PUBLIC = "https://hocba.thpt.edu.vn"
REASON = "Học sinh chuyển trường trước khi kết thúc năm học"
Make = Callable[..., Any]


@pytest.fixture
def school(app_factory: Any, settings_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Make:
    async def make(*, lang: str = "vi", public_url: str = "") -> RecordsKit:
        monkeypatch.setenv("EDUDESK_TEST_ISSUER_PASS", "issuer-pass")
        pki = DemoPki.create()
        settings = settings_factory(records=records_settings(tmp_path, pki), general={"language": lang},
                                    web={"enabled": False, "public_url": public_url})
        app = await app_factory(settings, clock=FakeClock(START), inline_analysis=True)
        kit = RecordsKit(app, pki, app.clock, leadership_roster())
        await kit.load()
        await kit.start()
        return kit
    return make


async def _notices(kit: RecordsKit, code: str) -> list[dict[str, Any]]:
    """The chat notices queued for a teacher's own chat (text and buttons)."""
    staff_id = (await Teacher.get(code=code)).staff_id
    return [j.payload for j in await Job.filter(kind="chat_notice").order_by("id")
            if j.payload.get("audience") == f"staff:{staff_id}"]


def _mails(kit: RecordsKit, address: str) -> list[email.message.EmailMessage]:
    folder = kit.app.settings.path(kit.app.settings.outgoing.maildir) / "new"
    found = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in folder.iterdir()]
    return [m for m in found if address in str(m["To"])]  # type: ignore[misc]


def _labels(notice: dict[str, Any]) -> list[str]:
    return [b["label"] for row in notice["buttons"] for b in row]


async def test_withdrawal_minutes_are_announced_as_minutes_and_a_record_turn_as_records(school: Make) -> None:
    kit = await school(public_url=PUBLIC)
    [record_turn] = [n for n in await _notices(kit, "GV01") if "ký học bạ số" in n["text"]]
    await sign_all(kit)
    await kit.app.records.confirm_class(ADMIN, kit.class_id)
    first = (await kit.records())[0]
    change = await start_change(kit.app.records, ADMIN, first.id, ChangeKind.WITHDRAWAL, REASON)
    await kit.settle()

    [minutes] = [n for n in await _notices(kit, "BGH02") if "biên bản" in n["text"]]
    text = minutes["text"]
    assert text.startswith("<b>Mời Thầy/Cô ký biên bản thu hồi học bạ số</b>")
    for said in (f"Biên bản số <b>{change.number}</b>: thu hồi học bạ số của học sinh <b>Học Sinh Số 1</b> (HS001), "
                 "lớp <b>10A1</b>, năm học 2025-2026.", f"Lý do: {REASON}", "học bạ bị thu hồi",
                 "Vai trò: Ban giám hiệu — biên bản nằm ở mục «10A1 · biên bản»", "Hạn ký: <b>",
                 f"Xem biên bản: {PUBLIC}/records/{change.minutes_id}/pdf"):
        assert said in text, said
    assert "Số học bạ chờ" not in text and "Mời Thầy/Cô ký học bạ số" not in text
    assert _labels(minutes) == ["Ký ngay", "Xem biên bản"]  # no Báo sai sót on minutes
    assert minutes["buttons"][1][0]["url"] == f"{PUBLIC}/records/{change.minutes_id}/pdf"

    # The record's own turn, earlier, in the records' wording with its buttons.
    assert record_turn["text"].startswith("<b>Mời Thầy/Cô ký học bạ số</b>")
    assert "Số học bạ chờ Thầy/Cô ký: <b>3</b>" in record_turn["text"] and "biên bản" not in record_turn["text"]
    assert _labels(record_turn) == ["Ký ngay", "Xem danh sách", "Báo sai sót"]

    # No chat is linked: the notice goes by mail, the minutes' wording in its subject and body.
    [mail] = [m for m in _mails(kit, "bgh02@thpt.edu.vn") if "biên bản" in str(m["Subject"])]
    assert str(mail["Subject"]) == "Mời Thầy/Cô ký biên bản thu hồi học bạ số"
    body = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert f"Biên bản số {change.number}: thu hồi học bạ số của học sinh Học Sinh Số 1 (HS001)" in body
    assert f"Lý do: {REASON}" in body and f"{PUBLIC}/records/{change.minutes_id}/pdf" in body
    assert any("Mời Thầy/Cô ký học bạ số" == str(m["Subject"]) for m in _mails(kit, "gv01@thpt.edu.vn"))
    for code in VICE:  # the principal signs last: not yet asked
        assert [n for n in await _notices(kit, code) if "biên bản" in n["text"]]
    assert not [n for n in await _notices(kit, "BGH01") if "biên bản" in n["text"]]


async def test_adjustment_minutes_in_english_without_a_public_console(school: Make) -> None:
    kit = await school(lang="en")
    await sign_all(kit)
    await kit.app.records.confirm_class(ADMIN, kit.class_id)
    second = (await kit.records())[1]
    change = await start_change(kit.app.records, ADMIN, second.id, ChangeKind.ADJUSTMENT,
                                "Điểm Toán học kì II nhập nhầm", corrected(kit, 1))
    await kit.settle()
    [minutes] = [n for n in await _notices(kit, "BGH03") if "minutes" in n["text"]]
    text = minutes["text"]
    assert text.startswith("<b>Please sign the minutes adjusting a school record</b>")
    for said in (f"Minutes no. <b>{change.number}</b>: adjustment of the school record of <b>Học Sinh Số 2</b> "
                 "(HS002), class <b>10A1</b>, school year 2025-2026.", "Reason: Điểm Toán học kì II nhập nhầm",
                 "signed again from the first stage", "«10A1 · biên bản»", "Sign by: <b>"):
        assert said in text, said
    assert "/pdf" not in text, "no console address: no link"
    book = (await SchoolRecord.get(id=change.minutes_id)).klass_id
    assert minutes["buttons"][1] == [{"label": "See the list", "action": "rec_list", "request_id": book, "arg": 3}]
    [mail] = [m for m in _mails(kit, "bgh03@thpt.edu.vn") if "minutes" in str(m["Subject"])]
    assert str(mail["Subject"]) == "Please sign the minutes adjusting a school record"


async def test_reminders_and_escalation_of_minutes_name_the_minutes(school: Make) -> None:
    from datetime import timedelta

    from edudesk.core.signing.reminders import remind_pending, send_sign_reminders

    kit = await school(public_url=PUBLIC)
    await sign_all(kit)
    await kit.app.records.confirm_class(ADMIN, kit.class_id)
    change = await start_change(kit.app.records, ADMIN, (await kit.records())[0].id, ChangeKind.WITHDRAWAL, REASON)
    await kit.settle()
    before = len(await _notices(kit, "BGH02"))
    # The vice principal's one tap ("Nhắc tất cả"): the minutes' signers are reminded of the minutes.
    await remind_pending(kit.app.settings, kit.clock, kit.app.queue, await kit.actor("BGH01"))
    nudge = (await _notices(kit, "BGH02"))[before]
    assert nudge["text"].startswith("<b>Ban giám hiệu nhắc ký học bạ số</b>\n<b>Mời Thầy/Cô ký biên bản thu hồi")
    assert f"Biên bản số <b>{change.number}</b>" in nudge["text"] and "học bạ chờ Thầy/Cô ký" not in nudge["text"]
    assert _labels(nudge) == ["Ký ngay", "Xem biên bản"]
    # Past the deadline: the escalation counts minutes, not records.
    kit.clock.advance(timedelta(days=30))
    await send_sign_reminders(kit.app.settings, kit.clock, kit.app.queue)
    late = [j.payload["text"] for j in await Job.filter(key__startswith="notice:signlate") if
            "biên bản" in j.payload["text"]]
    assert late and all("<b>Quá hạn ký biên bản</b>" in t and "biên bản chưa ký" in t for t in late)


async def test_record_sign_now_notice_in_english_when_english_is_chosen(school: Make) -> None:
    kit = await school(lang="en")
    [notice] = [n for n in await _notices(kit, "GV01") if "records" in n["text"]]
    text = notice["text"]
    assert text.startswith("<b>Please sign the school records</b>\nClass <b>10A1</b> — school year 2025-2026")
    assert "Role: Subject teachers (" in text and "Records waiting for your signature: <b>3</b>" in text
    assert "Sign by: <b>" in text and "Sign in the console (School records → Sign now) with your signing PIN" in text
    assert not any(vi in text for vi in ("Mời Thầy/Cô", "Vai trò", "Hạn ký", "Thầy/Cô xem"))
