"""The shipped defaults are a fictional example school, not one real university: the built-in settings and the
shipped config.toml name no real school, a school's own values come from `edudesk init`, and the example
school's students (sv.example.edu.vn) are students. HUST's real configuration ships as an example."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tomllib
from email.message import EmailMessage
from pathlib import Path

import pytest

from edudesk.cli.init import School, add_parser, gather, write_config
from edudesk.core.accounts.naming import propose_address
from edudesk.core.config import InstitutionSettings, Settings, load_settings
from edudesk.core.forms.classify import student_domains_of
from edudesk.core.intake.domain import Person, Population
from edudesk.core.text import fold
from edudesk.mailer.analyse import analyse_raw
from edudesk.resources import config_example
from tests.hust import HUST, HUST_CONFIG, hust_settings

ROOT = Path(__file__).resolve().parents[2]
REAL_SCHOOL = ("hust", "bach khoa", "bknic", "mang thong tin")  # folded: "Bách khoa" and "BÁCH KHOA" alike


def real_school_words(text: str) -> list[str]:
    """The words of a real university found in a text (case and diacritics ignored)."""
    folded = fold(text)
    return [word for word in REAL_SCHOOL if word in folded]


def test_the_built_in_defaults_name_no_real_school() -> None:
    defaults = Settings()
    assert real_school_words(defaults.model_dump_json()) == []
    assert (defaults.institution.name, defaults.institution.office_address, defaults.outgoing.from_address) == (
        "Trường Đại học Ví Dụ", "it@example.edu.vn", "it@example.edu.vn")
    assert (defaults.naming.staff_domain, defaults.naming.student_domain) == ("example.edu.vn", "sv.example.edu.vn")


@pytest.mark.parametrize("path", [ROOT / "config.toml", config_example()], ids=["checkout", "package"])
def test_the_shipped_config_names_no_real_school_and_is_the_built_in_school(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert real_school_words(text) == []
    settings = load_settings(path, environ={})
    # `edudesk run` warns while [institution] is the built-in one: the shipped file must stay equal to it.
    assert settings.institution == InstitutionSettings()
    assert (settings.naming, settings.outgoing.from_address) == (Settings().naming, Settings().outgoing.from_address)


def test_the_example_schools_students_are_recognised_by_their_sv_domain() -> None:
    defaults = Settings()
    assert student_domains_of(defaults.institution.domains) == ("sv.example.edu.vn",)
    an = Person(full_name="Nguyễn Văn An", student_id="20251234")
    assert propose_address(an, "student", defaults.naming, set()) == "an.nguyenvan@sv.example.edu.vn"


@pytest.mark.parametrize(("sender", "expected"), [
    ("minh.tran@sv.example.edu.vn", Population.STUDENT),
    ("minh.tran@example.edu.vn", Population.STAFF),
])
def test_a_mail_from_the_example_school_is_classified_by_its_domain(sender: str, expected: Population) -> None:
    # Nothing but the sender's domain says who writes: "Mã số" is any ID, no staff or student words.
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, "it@example.edu.vn", "Đề nghị cấp lại mật khẩu"
    message["Message-ID"] = "<reset@example.edu.vn>"
    message.set_content("Họ và tên: Trần Minh\nMã số: 1234\n")
    extracted = analyse_raw(message.as_bytes(), Settings()).extracted
    assert extracted is not None and extracted.persons
    assert extracted.population is expected


def test_hust_ships_as_an_example_config_that_loads_on_its_own() -> None:
    text = HUST_CONFIG.read_text(encoding="utf-8")
    assert "Seed 000" in text  # says whose procedures seed 000 describes
    assert set(tomllib.loads(text)) == {"institution", "naming", "outgoing"}  # only what differs from defaults
    settings = load_settings(HUST_CONFIG, environ={})
    tests_school = hust_settings()  # the tests' school is this file's
    assert [getattr(settings, s) for s in HUST] == [getattr(tests_school, s) for s in HUST]
    assert settings.institution.name == "Trường Đại học Bách khoa Hà Nội"
    assert settings.institution.domains == ("hust.edu.vn", "sis.hust.edu.vn")
    assert (settings.naming.staff_domain, settings.naming.student_domain) == ("hust.edu.vn", "sis.hust.edu.vn")
    assert settings.outgoing.from_address == settings.institution.office_address == "office-bknic@hust.edu.vn"
    assert student_domains_of(settings.institution.domains) == ("sis.hust.edu.vn",)
    for section, values in HUST.items():  # every value differs from the built-in one, or says the same form
        defaults = getattr(Settings(), section)
        same = [key for key in values if getattr(defaults, key) == getattr(getattr(settings, section), key)]
        assert set(same) <= {"staff_form", "student_form", "list_form", "report_form"}, (section, same)


def test_init_writes_a_config_that_loads_with_the_schools_values_and_none_of_the_example_schools(
        tmp_path: Path) -> None:
    school = School(name="Trường THCS Lê Lợi", short_name="THCS Lê Lợi", domains=("leloi.edu.vn", "hs.leloi.edu.vn"),
                    staff_domain="leloi.edu.vn", student_domain="hs.leloi.edu.vn", office_address="tin@leloi.edu.vn",
                    office_unit="Tổ Tin học", naming_rule="{given}.{family}{middle}", staff_form="BM01",
                    student_form="BM02", list_form="BM-CNTT31", lang="vi")
    target = tmp_path / "config.toml"
    write_config(target, school, force=False)
    settings = load_settings(target, environ={})
    assert settings.institution != InstitutionSettings()  # `edudesk run` no longer warns
    assert settings.institution.name == "Trường THCS Lê Lợi" and settings.outgoing.from_address == "tin@leloi.edu.vn"
    assert (settings.naming.staff_domain, settings.naming.student_domain) == ("leloi.edu.vn", "hs.leloi.edu.vn")
    data = tomllib.loads(target.read_text(encoding="utf-8"))
    school_values = str([data["institution"], data["naming"], data["outgoing"]])
    assert "Ví Dụ" not in school_values and "example.edu.vn" not in school_values


def test_init_help_names_the_values_it_writes() -> None:
    done = subprocess.run([sys.executable, "-m", "edudesk", "init", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for flag in ("--name", "--domain", "--office-address", "--naming-rule", "--staff-form", "--student-form",
                 "--list-form"):
        assert flag in done.stdout
    assert real_school_words(done.stdout) == []


def test_init_without_form_flags_writes_the_built_in_form_names() -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["init", "--name", "Trường THCS Lê Lợi", "--domain", "leloi.edu.vn",
                              "--domain", "hs.leloi.edu.vn", "--office-address", "tin@leloi.edu.vn"])
    args.config = None
    school = gather(args, None)
    assert (school.staff_domain, school.student_domain) == ("leloi.edu.vn", "hs.leloi.edu.vn")
    builtin = InstitutionSettings()
    assert (school.staff_form, school.student_form, school.list_form) == (
        builtin.staff_form, builtin.student_form, builtin.list_form)
