"""Name parts and mailbox addresses (seed 000: a.xyz@hust.edu.vn / a.xyz@sis.hust.edu.vn)."""

from __future__ import annotations

import pytest

from edudesk.core.accounts.naming import (
    check_naming,
    local_part,
    propose_address,
    propose_addresses,
    split_family_middle,
    split_full_name,
)
from edudesk.core.errors import ConfigError
from edudesk.core.intake.domain import Person
from tests.hust import hust_settings

SETTINGS = hust_settings().naming  # seed 000's school
AN = Person(full_name="Nguyễn Văn An", student_id="20201234", staff_id="CB0042")


@pytest.mark.parametrize(
    ("full", "parts"),
    [
        ("Nguyễn Văn An", ("Nguyễn", "Văn", "An")),
        ("Đặng Thị Ngọc Ánh", ("Đặng", "Thị Ngọc", "Ánh")),
        ("Tôn Thất Thuyết", ("Tôn Thất", "", "Thuyết")),
        ("Tôn Nữ Thị Hà", ("Tôn Nữ", "Thị", "Hà")),
        ("Âu Dương Phong", ("Âu Dương", "", "Phong")),
        ("  lê   hoa ", ("lê", "", "hoa")),
        ("Minh", ("", "", "Minh")),
        ("", ("", "", "")),
    ],
)
def test_full_name_splits_family_first_given_last(full: str, parts: tuple[str, str, str]) -> None:
    assert split_full_name(full) == parts


def test_family_middle_column_splits_into_family_and_middle() -> None:
    assert split_family_middle("Nguyễn Văn") == ("Nguyễn", "Văn")
    assert split_family_middle("Hoàng Phủ Ngọc") == ("Hoàng Phủ", "Ngọc")
    assert split_family_middle("Lê") == ("Lê", "")


def test_seed_000_example_gives_staff_and_student_addresses() -> None:
    assert propose_address(AN, "staff", SETTINGS, set()) == "an.nguyenvan@hust.edu.vn"
    assert propose_address(AN, "student", SETTINGS, set()) == "an.nguyenvan@sis.hust.edu.vn"


def test_diacritics_and_d_stroke_are_removed() -> None:
    person = Person(full_name="Đặng Đức Đạt")
    assert propose_address(person, "student", SETTINGS, set()) == "dat.dangduc@sis.hust.edu.vn"


def test_nfd_name_gives_the_same_address() -> None:
    import unicodedata

    nfd = Person(full_name=unicodedata.normalize("NFD", "Nguyễn Văn An"))
    assert propose_address(nfd, "staff", SETTINGS, set()) == "an.nguyenvan@hust.edu.vn"


def test_name_parts_win_over_the_full_name() -> None:
    person = Person(full_name="Tôn Thất Thuyết", family_name="Tôn Thất", given_name="Thuyết")
    assert local_part(person, SETTINGS.rule) == "thuyet.tonthat"


def test_collision_takes_smallest_free_suffix() -> None:
    taken = {"an.nguyenvan@sis.hust.edu.vn", "an.nguyenvan2@sis.hust.edu.vn", "an.nguyenvan4@sis.hust.edu.vn"}
    assert propose_address(AN, "student", SETTINGS, taken) == "an.nguyenvan3@sis.hust.edu.vn"


def test_suffix_start_is_configurable() -> None:
    settings = SETTINGS.model_copy(update={"suffix_start": 1})
    taken = {"an.nguyenvan@hust.edu.vn"}
    assert propose_address(AN, "staff", settings, taken) == "an.nguyenvan1@hust.edu.vn"


def test_taken_may_be_a_callable() -> None:
    asked: list[str] = []

    def taken(address: str) -> bool:
        asked.append(address)
        return address == "an.nguyenvan@hust.edu.vn"

    assert propose_address(AN, "staff", SETTINGS, taken) == "an.nguyenvan2@hust.edu.vn"
    assert asked == ["an.nguyenvan@hust.edu.vn", "an.nguyenvan2@hust.edu.vn"]


def test_student_id_suffix_strategy() -> None:
    settings = SETTINGS.model_copy(update={"collision": "student_id_suffix"})
    taken = {"an.nguyenvan@sis.hust.edu.vn"}
    assert propose_address(AN, "student", settings, taken) == "an.nguyenvan20201234@sis.hust.edu.vn"
    # without an ID it falls back to numbers
    no_id = Person(full_name="Nguyễn Văn An")
    assert propose_address(no_id, "student", settings, taken) == "an.nguyenvan2@sis.hust.edu.vn"


def test_list_rows_do_not_collide_with_each_other() -> None:
    persons = [AN, Person(full_name="Nguyễn Văn An"), Person(full_name="Lê Thị Hoa"), AN]
    taken = {"an.nguyenvan@sis.hust.edu.vn"}
    assert propose_addresses(persons, "student", SETTINGS, taken) == [
        "an.nguyenvan2@sis.hust.edu.vn",
        "an.nguyenvan3@sis.hust.edu.vn",
        "hoa.lethi@sis.hust.edu.vn",
        "an.nguyenvan4@sis.hust.edu.vn",
    ]
    assert taken == {"an.nguyenvan@sis.hust.edu.vn"}  # the caller's set is not modified


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("{family}{middle_initials}.{given}", "nguyenv.an"),
        ("{given}{family_initial}{middle_initials}", "annv"),
        ("{student_id}", "20201234"),
        ("{given}.{staff_id}", "an.cb0042"),
        ("{given}..{middle}.", "an.van"),
    ],
)
def test_rule_is_a_configurable_format(rule: str, expected: str) -> None:
    assert local_part(AN, rule) == expected


def test_unknown_rule_field_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        check_naming(SETTINGS.model_copy(update={"rule": "{given}.{surname}"}))
    with pytest.raises(ConfigError):
        check_naming(SETTINGS.model_copy(update={"collision": "random"}))


def test_empty_name_gives_no_address() -> None:
    assert propose_address(Person(), "student", SETTINGS, set()) == ""
