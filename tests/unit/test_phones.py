"""Mobile numbers: every spelling people use -> E.164, and only mobiles."""

from __future__ import annotations

import pytest

from edudesk.core.people.phones import display_mobile, normalise_mobile


@pytest.mark.parametrize(
    "written",
    [
        "0912345678",
        "0912 345 678",
        "0912.345.678",
        "0912-345-678",
        "+84 912 345 678",
        "+84912345678",
        "84912345678",
        "(+84) 912-345-678",
        "+84 (0) 912 345 678",
        "912345678",
        "０９１２３４５６７８",  # full-width digits from an IME
    ],
)
def test_phone_with_spaces_dots_and_plus84_normalises_to_e164(written: str) -> None:
    assert normalise_mobile(written) == "+84912345678"


def test_spreadsheet_number_without_leading_zero_is_read() -> None:
    assert normalise_mobile(912345678.0) == "+84912345678"
    assert normalise_mobile(912345678) == "+84912345678"


def test_landline_is_not_a_mobile() -> None:
    assert normalise_mobile("024 3868 2222") is None


def test_letters_are_not_read_as_vanity_digits() -> None:
    # phonenumbers alone turns "Zalo" into 9256 and gives a wrong 15-digit number.
    assert normalise_mobile("0912 345 678 (Zalo)") == "+84912345678"
    assert normalise_mobile("SĐT: 0987.654.321 hoặc 0912345678") == "+84987654321"


def test_old_eleven_digit_mobile_is_renumbered() -> None:
    assert normalise_mobile("01688 123 456") == "+84388123456"
    assert normalise_mobile("+84 1688 123 456") == "+84388123456"


@pytest.mark.parametrize("written", ["", None, "abc", "091234567", "0912 345 678 9", "không có"])
def test_not_a_mobile_gives_none(written: str | None) -> None:
    assert normalise_mobile(written) is None


def test_foreign_mobile_needs_its_country_prefix() -> None:
    assert normalise_mobile("+856 20 5555 1234") == "+8562055551234"
    assert normalise_mobile("020 5555 1234") is None  # read as Vietnamese, and not a VN mobile


def test_display_mobile_is_the_national_spelling() -> None:
    assert display_mobile("+84912345678") == "0912 345 678"
