"""Vietnamese mobile numbers: any common spelling to E.164 ("+84912345678"), mobiles only."""

from __future__ import annotations

import re
import unicodedata

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

_MOBILE_TYPES = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)
# Only digits and the punctuation people put between them; anything else (letters) means the
# text is a sentence, and phonenumbers would read letters as vanity digits ("Zalo" -> 9256).
_NUMBER_ONLY = re.compile(r"^[\d\s.\-+()/]+$")
_TRUNK_IN_BRACKETS = re.compile(r"\(\s*0\s*\)")
# 11-digit mobile prefixes renumbered to 10 digits in 2018; people still copy old contact cards.
_OLD_PREFIXES = {
    "0162": "032", "0163": "033", "0164": "034", "0165": "035", "0166": "036", "0167": "037",
    "0168": "038", "0169": "039", "0120": "070", "0121": "079", "0122": "077", "0126": "076",
    "0128": "078", "0123": "083", "0124": "084", "0125": "085", "0127": "081", "0129": "082",
    "0186": "056", "0188": "058", "0199": "059",
}


def _renumber(digits: str) -> str:
    if len(digits) == 11 and digits[:4] in _OLD_PREFIXES:
        return _OLD_PREFIXES[digits[:4]] + digits[4:]
    if len(digits) == 12 and digits.startswith("84") and "0" + digits[2:5] in _OLD_PREFIXES:
        return "84" + _OLD_PREFIXES["0" + digits[2:5]][1:] + digits[5:]
    return digits


def _as_mobile(candidate: str) -> str | None:
    try:
        number = phonenumbers.parse(candidate, "VN")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    if phonenumbers.number_type(number) not in _MOBILE_TYPES:
        return None
    # A foreign mobile is accepted only when written with its "+country" prefix: a bare
    # national number is always read as Vietnamese.
    if number.country_code != 84 and not candidate.lstrip().startswith("+"):
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def normalise_mobile(text: str | int | float | None) -> str | None:
    """Return the mobile number in E.164 ("+84912345678"), or None when it is not a valid mobile."""
    if text is None or text == "":
        return None
    if isinstance(text, float) and text.is_integer():
        text = int(text)  # a spreadsheet cell that stored 912345678 as a number
    # NFKC turns full-width digits and plus signs from CJK input methods into ASCII.
    value = unicodedata.normalize("NFKC", str(text)).strip()
    value = _TRUNK_IN_BRACKETS.sub("", value)
    if _NUMBER_ONLY.match(value):
        plus = value.startswith("+")
        digits = _renumber(re.sub(r"\D", "", value))
        return _as_mobile(("+" if plus else "") + digits)
    # Free text such as "0912 345 678 (Zalo)": take the first valid mobile in it.
    for match in phonenumbers.PhoneNumberMatcher(value, "VN"):
        found = _as_mobile(match.raw_string)
        if found:
            return found
    return None


def display_mobile(e164: str) -> str:
    """The national spelling people recognise ("+84912345678" -> "0912 345 678")."""
    try:
        number = phonenumbers.parse(e164, "VN")
    except phonenumbers.NumberParseException:
        return e164
    if number.country_code != 84:
        return phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    national = str(number.national_number)
    return f"0{national[:3]} {national[3:6]} {national[6:]}"
