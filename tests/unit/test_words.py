"""The one catalogue of words (core/words/): both languages complete, every state, kind, event and error named."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from edudesk.core.intake.domain import Kind, Population
from edudesk.core.people.staff import Role
from edudesk.core.requests.service import Action
from edudesk.core.requests.workflow import State
from edudesk.core.words import CATALOGUES, detail_pairs, event_label, language, t, words

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [p for d in ("core", "bot", "mailer", "cli") for p in (ROOT / "edudesk" / d).rglob("*.py")] + [
    ROOT / "edudesk" / "app.py"]
# Symbols drawn as emoji (or as boxes on a school PC without an emoji font): outside the BMP, the emoji
# variation selector, and the BMP characters whose default presentation is emoji.
EMOJI = re.compile("[\U00010000-\U0010FFFF\uFE0F\u231A\u231B\u23E9-\u23F3\u2614\u2615\u26A1\u26D4\u2705\u270A"
                   "\u270B\u2728\u274C\u274E\u2753-\u2755\u2757\u2795-\u2797\u27B0\u27BF\u2B1B\u2B1C\u2B50\u2B55]")


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def _fields_with_spec(text: str) -> set[tuple[str, str]]:
    return {(name, spec or "") for _, name, spec, _ in string.Formatter().parse(text) if name is not None}


def test_vietnamese_and_english_have_exactly_the_same_keys() -> None:
    vi, en = set(CATALOGUES["vi"]), set(CATALOGUES["en"])
    assert not vi - en, f"missing in en.py: {sorted(vi - en)}"
    assert not en - vi, f"missing in vi.py: {sorted(en - vi)}"


def test_each_text_has_the_same_placeholders_in_both_languages() -> None:
    vi, en = CATALOGUES["vi"], CATALOGUES["en"]
    different = [k for k in vi if _fields_with_spec(vi[k]) != _fields_with_spec(en[k])]
    assert not different, different


def test_unknown_language_falls_back_to_vietnamese_and_unknown_key_raises() -> None:
    assert language("fr") == "vi" and language(None) == "vi" and language("en") == "en"
    assert t("state.received", "fr") == t("state.received") == "Chờ kiểm tra"
    assert t("state.received", "en") == "To check"
    assert t("rec.badge", "vi", n=3) == "3 học bạ chờ Thầy/Cô ký"
    with pytest.raises(KeyError):
        t("state.recieved", "vi")


@pytest.mark.parametrize("prefix, values", [
    ("state", [s.value for s in State]), ("kind", [k.value for k in Kind]), ("mailkind", [k.value for k in Kind]),
    ("population", [p.value for p in Population]), ("role", [r.value for r in Role]),
    ("action", [a.value for a in Action]),
])
def test_every_value_of_the_domain_has_a_label(prefix: str, values: list[str]) -> None:
    for lang in CATALOGUES:
        missing = [v for v in values if not words(lang).has(f"{prefix}.{v}")]
        assert not missing, (lang, prefix, missing)


def _event_names() -> set[str]:
    """Every audit action written by the code: literal names, and the f-string families spelled out."""
    names: set[str] = set()
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        for block in re.findall(r"AuditEvent\.create\((.{0,400}?)\)", text, flags=re.S):
            names.update(re.findall(r'action="([a-z_]+)"', block))
        names.update(re.findall(r'^SIGNED_IN = "([a-z_]+)"', text, flags=re.M))
    names |= {f"request_{a.value}" for a in Action}
    names |= {f"records_sign_{s}" for s in ("done", "refused")}
    names |= {f"mail_{o}" for o in ("request_created", "reply", "too_large", "timeout", "auto_reply", "bounce")}
    return names


def test_every_audit_event_the_code_writes_has_a_name_for_people() -> None:
    names = _event_names()
    assert {"password_link_opened", "request_overdue", "request_escalated", "web_session_opened"} <= names
    for lang in CATALOGUES:
        missing = sorted(n for n in names if not words(lang).has(f"event.{n}"))
        assert not missing, (lang, missing)


def test_every_error_code_has_a_text() -> None:
    codes = set()
    for path in SOURCES:
        codes.update(re.findall(r'^\s+code = "([a-z0-9_]+)"', path.read_text(encoding="utf-8"), flags=re.M))
        codes.update(re.findall(r'message, code = "[^"]*", "([a-z0-9_]+)"', path.read_text(encoding="utf-8")))
        codes.update(re.findall(r'\bcode="([a-z0-9_]+)"', path.read_text(encoding="utf-8")))
    assert {"not_found", "stale", "pin_incorrect", "mail_send"} <= codes
    for lang in CATALOGUES:
        missing = sorted(c for c in codes if not words(lang).has(f"error.{c}"))
        assert not missing, (lang, missing)


def test_no_text_depends_on_an_emoji_font() -> None:
    for lang, texts in CATALOGUES.items():
        drawn = {k: v for k, v in texts.items() if EMOJI.search(v)}
        assert not drawn, (lang, drawn)


def test_no_code_or_template_draws_an_emoji() -> None:
    """Words built in code (notices, buttons) and the templates, not only the catalogue."""
    files = SOURCES + sorted((ROOT / "edudesk" / "templates").rglob("*.j2"))
    drawn = [f"{p.relative_to(ROOT)}:{n}: {line.strip()[:80]}" for p in files
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if EMOJI.search(line)]
    assert not drawn, "\n".join(drawn)


def test_teachers_are_thay_co_in_the_records_words() -> None:
    teacher_words = [v for k, v in CATALOGUES["vi"].items() if k.startswith("rec.") and "Anh/Chị" in v]
    # Only the page for someone with no records role at all may say Anh/Chị.
    assert teacher_words == [CATALOGUES["vi"]["rec.nothing"]]


def test_event_label_prefers_the_catalogue_over_a_label_stored_in_another_language() -> None:
    assert event_label("request_provisioned", "en", "Đã thực hiện") == "Provisioned"
    assert event_label("request_overdue", "vi") == "Quá hạn xử lý"
    assert event_label("something_new", "vi", "Nhãn đã lưu") == "Nhãn đã lưu"


def test_audit_details_are_named_and_their_values_read_as_words() -> None:
    pairs = detail_pairs([("from", "received"), ("to", "approved"), ("owner", "office"), ("late_hours", "5"),
                          ("deadline", "2026-09-01T08:00:00+00:00")], "vi", "Asia/Ho_Chi_Minh")
    assert pairs == [("Từ", "Chờ kiểm tra"), ("Sang", "Chờ thực hiện"), ("Bộ phận", "Văn phòng"),
                     ("Số giờ trễ", "5"), ("Hạn", "01/09/2026 15:00")]


def test_console_labels_are_built_from_the_catalogue() -> None:
    from edudesk.bot.web.labels import EN, VI

    assert VI["states"]["received"] == t("state.received", "vi") and EN["kinds"]["new_account"] == "New account"
    assert VI["rec"]["stages"][4] == "Ký phát hành" and len(VI["login_ways"]) == 3
    assert VI["actions"]["password_link_opened"] == t("event.password_link_opened", "vi")
