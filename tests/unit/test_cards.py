"""Cards: what staff see and can tap, rendered from templates/chat/ (no database, no network)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from edudesk.bot.cards import RequestView, build_card, picker_card
from edudesk.bot.telegram.callbacks import Tap, keyboard
from edudesk.core.config import load_settings
from edudesk.core.models import AuditEvent
from edudesk.core.requests.models import Request, RequestPerson

NOW = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
SETTINGS = load_settings(None)


def view(state: str = "received", people: int = 1, problems: list[list[dict]] | None = None,
         sender_name: str = "Nguyễn Văn An", request_id: int = 7, version: int = 0) -> RequestView:
    r = Request(id=request_id, kind="new_account" if people == 1 else "bulk_new_accounts", population="student",
                state=state, sender="an@gmail.com", sender_name=sender_name, received_at=NOW, updated_at=NOW,
                deadline=NOW + timedelta(hours=5), version=version, problems=[], flags=[])
    persons = [RequestPerson(id=i + 1, request_id=r.id, row=i, full_name=f"Trần Thị Bình {i}",
                             proposed_address=f"binh.tt{i}@sis.hust.edu.vn", person_id=f"2020{i:04d}",
                             data={"full_name": f"Trần Thị Bình {i}", "student_id": f"2020{i:04d}",
                                   "date_of_birth": "2003-01-01", "mobile": "+84912345678"},
                             problems=(problems or [[]] * people)[i] if problems else [])
               for i in range(people)]
    return RequestView(r, persons, [])


def labels(card) -> list[str]:
    return [b.label for row in card.buttons for b in row]


def test_office_card_shows_findings_deadline_and_the_three_office_buttons() -> None:
    card = build_card(view(), "office", SETTINGS, NOW)
    assert "YC-7" in card.text and "Cấp tài khoản thư điện tử" in card.text
    assert "✓ mã số, họ tên, ngày sinh, SĐT" in card.text
    assert "binh.tt0@sis.hust.edu.vn" in card.text
    assert "còn 5 giờ" in card.text
    assert labels(card) == ["Hợp lệ", "Từ chối", "Yêu cầu bổ sung"]
    assert labels(build_card(view(), "technical", SETTINGS, NOW)) == []


def test_a_mismatch_shows_the_registry_value_and_an_unknown_person_gets_no_tick() -> None:
    mismatch = [{"field": "full_name", "code": "name_mismatch", "severity": "error",
                 "message": "Họ và tên không khớp với hồ sơ: hồ sơ ghi «Trần Thị Bính»."}]
    card = build_card(view(problems=[mismatch]), "office", SETTINGS, NOW)
    assert "✗ Họ và tên không khớp với hồ sơ: hồ sơ ghi «Trần Thị Bính»." in card.text
    assert "✓ mã số, ngày sinh, SĐT" in card.text
    unknown = [{"field": "student_id", "code": "not_in_registry", "severity": "error",
                "message": "Mã số sinh viên 20200000 không có trong danh sách của trường."}]
    card = build_card(view(problems=[unknown]), "office", SETTINGS, NOW)
    assert "✓ SĐT" in card.text and "họ tên" not in card.text.split("✗")[0].split("20200000")[-1]


def test_names_from_mail_cannot_inject_html_into_a_card() -> None:
    card = build_card(view(sender_name='<a href="http://evil">bấm</a> & <b>'), "office", SETTINGS, NOW)
    assert "<a href" not in card.text and "&lt;a href=&#34;http://evil&#34;&gt;" in card.text
    assert "&amp; &lt;b&gt;" in card.text


def test_a_list_is_summarised_and_paged() -> None:
    problems = [[{"field": "mobile", "code": "bad_mobile", "severity": "error", "message": "SĐT sai"}]
                if i % 3 == 0 else [] for i in range(25)]
    v = view(people=25, problems=problems)
    first = build_card(v, "office", SETTINGS, NOW)
    assert "<b>25 người</b>, 9 người có lỗi · trang 1/3" in first.text
    assert "Trần Thị Bình 9" in first.text and "Trần Thị Bình 10" not in first.text
    assert labels(first)[-1] == "Trang 2 ›"
    last = build_card(v, "office", SETTINGS, NOW, page=2)
    assert "Trần Thị Bình 24" in last.text and labels(last)[-1] == "‹ Trang 2"


def test_technical_card_offers_the_provisioning_button_for_the_kind() -> None:
    v = view(state="approved")
    assert labels(build_card(v, "technical", SETTINGS, NOW)) == ["Cấp tài khoản"]
    v.request.kind = "password_reset"
    assert labels(build_card(v, "technical", SETTINGS, NOW)) == ["Cấp lại mật khẩu"]
    v.request.kind = "delete_accounts"
    assert labels(build_card(v, "technical", SETTINGS, NOW)) == ["Xoá tài khoản"]
    assert labels(build_card(v, "office", SETTINGS, NOW)) == []


def test_history_shows_who_did_what_and_when() -> None:
    v = view(state="approved")
    v.events.append(AuditEvent(at=NOW, actor="Lê Văn Phòng (tg:1)", action="request_approve",
                               detail={"label": "Hợp lệ", "reason": ""}))
    assert "<i>Hợp lệ — Lê Văn Phòng, 01/09/2026 15:00</i>" in build_card(v, "office", SETTINGS, NOW).text


def test_button_payloads_fit_telegram_64_bytes_even_for_huge_ids() -> None:
    v = view(request_id=10**12 - 1, version=10**6)
    for card in (build_card(v, "office", SETTINGS, NOW), picker_card(v, "reject", SETTINGS, NOW),
                 picker_card(v, "ask_info", SETTINGS, NOW)):
        markup = keyboard(card)
        assert markup is not None
        for row in markup.inline_keyboard:
            for button in row:
                assert button.callback_data is not None and len(button.callback_data.encode()) <= 64
                tap = Tap.unpack(button.callback_data)
                assert tap.r == 10**12 - 1 and tap.v == 10**6


def test_a_huge_list_still_fits_one_message() -> None:
    card = build_card(view(people=500), "office", SETTINGS, NOW)
    assert len(card.text) <= 4096


def test_cards_in_english_when_configured() -> None:
    english = load_settings(None, overrides={"general": {"language": "en"}})
    card = build_card(view(), "office", english, NOW)
    assert "From: Nguyễn Văn An" in card.text and "5 h 0 min left" in card.text
    assert labels(card) == ["Valid", "Reject", "Ask for more"]


def test_a_list_card_links_to_its_rows_when_the_console_has_a_public_address() -> None:
    public = load_settings(None, overrides={"web": {"public_url": "https://helpdesk.hust.edu.vn/"}})
    card = build_card(view(people=3), "office", public, NOW)
    (link,) = [b for row in card.buttons for b in row if b.url]
    assert link.url == "https://helpdesk.hust.edu.vn/requests/7/rows.csv"
    markup = keyboard(card)
    assert markup is not None and markup.inline_keyboard[-1][0].url == link.url
    assert not [b for row in build_card(view(people=3), "office", SETTINGS, NOW).buttons for b in row if b.url]
