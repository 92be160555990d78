"""TCVN3 and VNI mojibake from old Word/Excel files -> Unicode, and nothing else touched."""

from __future__ import annotations

import pytest

from edudesk.core.legacy import (
    decode_legacy,
    decode_tcvn3,
    decode_vni,
    detect_legacy,
    is_vietnamese_syllable,
    legacy_font_encoding,
    repair_legacy,
)

# Every lower-case Vietnamese letter with its TCVN3 byte (as the Latin-1 character Word shows).
TCVN3_LETTERS = {
    "à": "µ", "ả": "¶", "ã": "·", "á": "¸", "ạ": "¹", "ă": "¨", "ằ": "»", "ẳ": "¼", "ẵ": "½", "ắ": "¾",
    "ặ": "Æ", "â": "©", "ầ": "Ç", "ẩ": "È", "ẫ": "É", "ấ": "Ê", "ậ": "Ë", "đ": "®", "è": "Ì", "ẻ": "Î",
    "ẽ": "Ï", "é": "Ð", "ẹ": "Ñ", "ê": "ª", "ề": "Ò", "ể": "Ó", "ễ": "Ô", "ế": "Õ", "ệ": "Ö", "ì": "×",
    "ỉ": "Ø", "ĩ": "Ü", "í": "Ý", "ị": "Þ", "ò": "ß", "ỏ": "á", "õ": "â", "ó": "ã", "ọ": "ä", "ô": "«",
    "ồ": "å", "ổ": "æ", "ỗ": "ç", "ố": "è", "ộ": "é", "ơ": "¬", "ờ": "ê", "ở": "ë", "ỡ": "ì", "ớ": "í",
    "ợ": "î", "ù": "ï", "ủ": "ñ", "ũ": "ò", "ú": "ó", "ụ": "ô", "ư": "\xad", "ừ": "õ", "ử": "ö", "ữ": "÷",
    "ứ": "ø", "ự": "ù", "ỳ": "ú", "ỷ": "û", "ỹ": "ü", "ý": "ý", "ỵ": "þ",
    "Ă": "¡", "Â": "¢", "Ê": "£", "Ô": "¤", "Ơ": "¥", "Ư": "¦", "Đ": "§",
}


def test_tcvn3_table_covers_every_vietnamese_letter() -> None:
    assert decode_tcvn3("".join(TCVN3_LETTERS.values())) == "".join(TCVN3_LETTERS)


@pytest.mark.parametrize(
    ("legacy", "unicode"),
    [
        ("NguyÔn V¨n An", "Nguyễn Văn An"),
        ("Lª ThÞ Hoa", "Lê Thị Hoa"),
        ("TrÇn §øc Th¾ng", "Trần Đức Thắng"),
        ("Hµ Néi", "Hà Nội"),
        ("Hå ChÝ Minh", "Hồ Chí Minh"),
        ("NGUYÔN V¡N AN", "NGUYỄN VĂN AN"),  # caps lock in a font that has no toned capitals
    ],
)
def test_tcvn3_name_is_repaired(legacy: str, unicode: str) -> None:
    assert detect_legacy(legacy) == "tcvn3"
    assert repair_legacy(legacy) == unicode


@pytest.mark.parametrize(
    ("legacy", "unicode"),
    [
        ("Nguyeãn Vaên An", "Nguyễn Văn An"),
        ("Ñaëng Thò Thuùy", "Đặng Thị Thúy"),
        ("Phaïm Thò Höông", "Phạm Thị Hương"),
        ("Nguyeãn Thò Hoa", "Nguyễn Thị Hoa"),
    ],
)
def test_vni_name_is_repaired(legacy: str, unicode: str) -> None:
    assert detect_legacy(legacy) == "vni"
    assert repair_legacy(legacy) == unicode


def test_vni_capitals_decode() -> None:
    assert decode_vni("NGUYEÃN ÑÖÙC") == "NGUYỄN ĐỨC"
    assert decode_vni("Tröôøng Ñaïi hoïc") == "Trường Đại học"


@pytest.mark.parametrize(
    "text",
    [
        "Nguyễn Văn An",
        "Phạm Thị Hương",
        "Lê Hà",  # Unicode Vietnamese that happens to fit in Latin-1
        "Ô",
        "José Müller",
        "café crème brûlée",
        "Ñoño",
        "20201234",
        "",
    ],
)
def test_normal_text_is_left_alone(text: str) -> None:
    assert detect_legacy(text) is None
    assert repair_legacy(text) == text


def test_font_names_tell_the_encoding() -> None:
    assert legacy_font_encoding(".VnTime") == "tcvn3"
    assert legacy_font_encoding(".VnTimeH") == "tcvn3"
    assert legacy_font_encoding("VNI-Times") == "vni"
    assert legacy_font_encoding("Times New Roman") is None
    assert legacy_font_encoding(None) is None


def test_vntimeh_font_text_comes_out_in_capitals() -> None:
    assert decode_legacy("nguyÔn v¨n an", "tcvn3", font_name=".VnTimeH") == "NGUYỄN VĂN AN"
    assert decode_legacy("nguyÔn v¨n an", "tcvn3", font_name=".VnTime") == "nguyễn văn an"


@pytest.mark.parametrize("word", ["Nguyễn", "thuyết", "Khuỷu", "Quỳnh", "Giang", "Hường", "NGUYỄN", "An"])
def test_real_syllables_are_recognised(word: str) -> None:
    assert is_vietnamese_syllable(word)


@pytest.mark.parametrize("word", ["NguyÔn", "café", "Müller", "Vaên", "ThÞ", "nguyễnn", "hóà"])
def test_mojibake_and_foreign_words_are_not_syllables(word: str) -> None:
    assert not is_vietnamese_syllable(word)
