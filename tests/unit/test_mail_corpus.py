"""Every way people really write, read as it must be: each mail of the corpus made by
`tests/fixtures/mail/make_kinds.py` goes through the parser and the form reader, and must read as
`expected.json` says (kind, population, persons, requester, who wrote a forwarded form, partial fields)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from edudesk.core.config import IntakeSettings, load_settings
from edudesk.core.forms import extract_request
from edudesk.core.forms.html import read_html_tables
from edudesk.core.forms.partial import is_partial, merge_reply
from edudesk.core.forms.values import text_value
from edudesk.core.intake.domain import ExtractedRequest, IncomingMail, Kind, Person
from edudesk.core.intake.loops import classify_automatic
from edudesk.core.intake.spam import dmarc_rejects, flagged_upstream
from edudesk.mailer.parse import parse_mail

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "mail"
EXPECTED: dict[str, dict[str, Any]] = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
SCHOOL = "thpt-nguyenhue.edu.vn"
OFFICE = f"cntt@{SCHOOL}"
SETTINGS = load_settings(None, overrides={"institution": {"domains": [SCHOOL]}}, environ={})


def read(name: str) -> tuple[IncomingMail, ExtractedRequest]:
    mail = parse_mail((CORPUS / name).read_bytes())
    return mail, extract_request(mail, IntakeSettings(), (SCHOOL,), student_domains=(f"hs.{SCHOOL}",))


def test_the_corpus_has_thirty_mails_or_more_each_with_its_expectation() -> None:
    assert len(EXPECTED) >= 30
    assert all((CORPUS / name).is_file() for name in EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_mail_reads_as_expected(name: str) -> None:
    want = EXPECTED[name]
    mail, found = read(name)
    assert classify_automatic(mail, (OFFICE,)) is None, "a person wrote each of these"
    assert mail.from_addr == want["requester"]
    spam = flagged_upstream(mail) or dmarc_rejects(mail, SETTINGS)
    assert spam == (want["outcome"] == "spam")
    if want["outcome"] == "spam":
        return
    assert found.kind.value == want["kind"]
    if "population" in want:
        assert found.population.value == want["population"]
    if "source" in want:
        assert found.source == want["source"]
    assert len(found.persons) == len(want["persons"])
    for person, expected in zip(found.persons, want["persons"], strict=True):
        assert person.full_name == expected["full_name"]
        assert person.person_id == expected["id"]
        if expected["mobile"]:
            assert person.mobile == expected["mobile"]
        if "date_of_birth" in expected:
            assert person.date_of_birth == date.fromisoformat(expected["date_of_birth"])
    assert found.forwarded_from == want.get("forwarded_from", "")
    for pair in want.get("fields", []):
        assert tuple(pair) in found.fields
    codes = {p.code for p in found.problems}
    if want["kind"] == Kind.QUESTION:
        assert "no_form" not in codes, "a question is never answered with 'we could not read your form'"
    if name.startswith("html_"):  # the HTML part's tables alone hold the same people
        tables, _ = read_html_tables(mail.html, 500)
        assert [text_value(r.get("full_name")) for r in tables.records] == [p["full_name"] for p in want["persons"]]
    if found.forwarded_from:
        (note,) = [p for p in found.problems if p.code == "forwarded"]
        assert found.forwarded_from in note.message and note.severity == "info"


BINH = Person(full_name="Lê Văn Bình", family_name="Lê", middle_name="Văn", given_name="Bình",
              student_id="HS2024001", class_name="10A1", proposed_address="binh.lv@hs.thpt-nguyenhue.edu.vn")


@pytest.mark.parametrize("name", sorted(n for n, w in EXPECTED.items() if "merged" in w))
def test_a_partial_reply_fills_in_the_one_person_of_its_request(name: str) -> None:
    _, found = read(name)
    assert is_partial(found), "not a whole form: the request's person is kept, the field added"
    stored = BINH.with_(student_id="") if found.persons and found.persons[0].student_id else BINH
    merged = merge_reply([stored], found.fields, Kind.NEW_ACCOUNT, staff=False)
    assert merged is not None
    (person,), problems, changed = merged
    for field, value in EXPECTED[name]["merged"].items():
        got = getattr(person, field)
        assert (got.isoformat() if isinstance(got, date) else got) == value
    assert changed == sorted(EXPECTED[name]["merged"])
    assert (person.full_name, person.proposed_address) == (BINH.full_name, BINH.proposed_address)


def test_a_partial_reply_to_a_list_changes_only_the_row_it_names() -> None:
    _, found = read("reply_partial_list_row_by_id.eml")
    rows = [Person(full_name=n, student_id=i) for n, i in (
        ("Nguyễn Thị Thu Trang", "HS2024011"), ("Trịnh Đức Anh", "HS2024012"), ("Âu Dương Minh Châu", "HS2024013"))]
    merged = merge_reply(rows, found.fields, Kind.BULK_NEW_ACCOUNTS, staff=False)
    assert merged is not None
    people, _, changed = merged
    assert [p.mobile for p in people] == ["", "+84987654321", ""]
    assert changed == ["mobile"]
    assert [p.full_name for p in people] == [p.full_name for p in rows]


def test_a_field_for_a_row_the_list_does_not_have_changes_nothing() -> None:
    rows = [Person(full_name="A B", student_id="HS1"), Person(full_name="C D", student_id="HS2")]
    assert merge_reply(rows, [("student_id", "HS9"), ("mobile", "0912345678")], Kind.BULK_NEW_ACCOUNTS,
                       staff=False) is None
    assert merge_reply(rows, [("mobile", "0912345678")], Kind.BULK_NEW_ACCOUNTS, staff=False) is None


def test_our_own_quoted_mail_below_a_reply_is_not_read_as_fields() -> None:
    for name in ("reply_partial_phone_gmail_vi.eml", "reply_partial_dob_outlook_vi.eml",
                 "reply_partial_phone_english.eml"):
        _, found = read(name)
        assert {f for f, _ in found.fields} <= {"mobile", "date_of_birth"}, name  # not "Họ và tên" quoted
