"""Pre-Unicode Vietnamese: TCVN3 (ABC, fonts ".Vn...") and VNI (fonts "VNI-...") mojibake to Unicode.

Old Word and Excel files typed in these fonts store Latin-1 letters that only look Vietnamese
through the font: TCVN3 "NguyÔn V¨n An", VNI "Nguyeãn Vaên An". Python has no codec for either.
"""

from __future__ import annotations

import re
import string
import unicodedata

# TCVN3 (TCVN 5712:1993, VN3): one byte per letter; capitals with tone marks do not exist
# (people used the ".VnTimeH" fonts, which draw the lower-case codes as capitals).
_TCVN3 = dict(
    zip(
        "¡¢£¤¥¦§¨©ª«¬\xad®µ¶·¸¹»¼½¾ÆÇÈÉÊËÌÎÏÐÑÒÓÔÕÖ×ØÜÝÞßáâãäåæçèéêëìíîïñòóôõö÷øùúûüýþ",
        "ĂÂÊÔƠƯĐăâêôơưđàảãáạằẳẵắặầẩẫấậèẻẽéẹềểễếệìỉĩíịòỏõóọồổỗốộờởỡớợùủũúụừửữứựỳỷỹýỵ",
        strict=True,
    )
)
_TCVN3_TABLE = str.maketrans(_TCVN3)

# VNI: base letter followed by a mark letter; a few letters stand alone.
_VNI_ALONE = {
    "ñ": "đ", "Ñ": "Đ", "ô": "ơ", "Ô": "Ơ", "ö": "ư", "Ö": "Ư", "æ": "ỉ", "Æ": "Ỉ",
    "ò": "ị", "Ò": "Ị", "ó": "ĩ", "Ó": "Ĩ", "î": "ỵ", "Î": "Ỵ", "ì": "ì", "Ì": "Ì", "í": "í", "Í": "Í",
}
_ACUTE, _GRAVE, _HOOK, _TILDE, _DOT = "\u0301", "\u0300", "\u0309", "\u0303", "\u0323"
_CIRC, _BREVE = "\u0302", "\u0306"
_TONES_ALL = "aeiouyơư"
# mark letter (lower-case form) -> (combining marks, bases it applies to)
_VNI_MARKS = {
    "ù": (_ACUTE, _TONES_ALL), "ø": (_GRAVE, _TONES_ALL), "û": (_HOOK, _TONES_ALL),
    "õ": (_TILDE, _TONES_ALL), "ï": (_DOT, _TONES_ALL),
    "â": (_CIRC, "aeo"), "á": (_CIRC + _ACUTE, "aeo"), "à": (_CIRC + _GRAVE, "aeo"),
    "å": (_CIRC + _HOOK, "aeo"), "ã": (_CIRC + _TILDE, "aeo"), "ä": (_CIRC + _DOT, "aeo"),
    "ê": (_BREVE, "a"), "é": (_BREVE + _ACUTE, "a"), "è": (_BREVE + _GRAVE, "a"),
    "ú": (_BREVE + _HOOK, "a"), "ü": (_BREVE + _TILDE, "a"), "ë": (_BREVE + _DOT, "a"),
}
_VNI_ALL_MARKS = {**_VNI_MARKS, **{k.upper(): v for k, v in _VNI_MARKS.items()}}

# Letters that can already be correct Unicode Vietnamese: their presence means "leave alone".
_VIET_RANGES = re.compile(
    r"[\u0102\u0103\u0110\u0111\u0128\u0129\u0168\u0169\u01a0\u01a1\u01af\u01b0\u1ea0-\u1ef9]"
)
_SYLLABLE = re.compile(
    r"^(ngh|ng|nh|ch|gh|gi|kh|ph|qu|th|tr|[bcdghklmnprstvx])?"
    r"(uye|uya|uyu|uoi|uou|ieu|yeu|oai|oay|oeo|uay|ai|ao|au|ay|eo|eu|ia|ie|iu|oa|oe|oi|oo|ua|ue|ui"
    r"|uo|uu|uy|ye|[aeiouy])(ch|ng|nh|[cmnpt])?$"
)
_TONE_MARKS = {_ACUTE, _GRAVE, _HOOK, _TILDE, _DOT}
_MODIFIABLE = {_CIRC: "aeo", _BREVE: "a", "\u031b": "ou"}
_WORD_SPLIT = re.compile(r"[\s\-/]+")


def decode_tcvn3(text: str, *, upper: bool = False) -> str:
    """Map TCVN3 letters to Unicode; `upper` for text in the ".Vn...H" capital fonts."""
    out = unicodedata.normalize("NFC", text.translate(_TCVN3_TABLE))
    return out.upper() if upper else out


def _vni(text: str) -> tuple[str, int]:
    out: list[str] = []
    leftovers = 0
    for ch in text:
        mark = _VNI_ALL_MARKS.get(ch)
        if mark and out and out[-1].lower() in mark[1]:
            base = out.pop()
            composed = unicodedata.normalize("NFC", base + mark[0])
            out.append(composed)
        elif ch in _VNI_ALONE:
            out.append(_VNI_ALONE[ch])
        else:
            leftovers += mark is not None
            out.append(ch)
    return "".join(out), leftovers


def decode_vni(text: str) -> str:
    """Map VNI letter + mark sequences ("Nguyeãn") to Unicode ("Nguyễn")."""
    return unicodedata.normalize("NFC", _vni(text)[0])


def _tcvn3(word: str) -> tuple[str, int]:
    unmapped = sum(1 for ch in word if "\x80" <= ch <= "\xff" and ch not in _TCVN3)
    decoded = decode_tcvn3(word)
    ascii_letters = [ch for ch in word if ch.isascii() and ch.isalpha()]
    if len(ascii_letters) >= 2 and all(ch.isupper() for ch in ascii_letters):
        decoded = decoded.upper()  # typed with caps lock in a font that has no toned capitals
    return decoded, unmapped


def is_vietnamese_syllable(word: str) -> bool:
    """True for one well-formed Vietnamese syllable ("Nguyễn", "thuyết"), False for "NguyÔn", "café"."""
    if not word or not (word.islower() or word.isupper() or word == word.capitalize()):
        return False
    decomposed = unicodedata.normalize("NFD", word.lower())
    tones = sum(1 for ch in decomposed if ch in _TONE_MARKS)
    # Only Vietnamese marks on the letters that take them: "ï", "ö", "ê" on i are not Vietnamese.
    for base, mark in zip(decomposed, decomposed[1:], strict=False):
        if unicodedata.combining(mark) and not unicodedata.combining(base):
            if mark not in _TONE_MARKS and base not in _MODIFIABLE.get(mark, ""):
                return False
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).replace("đ", "d")
    if tones > 1 or not bare.isascii() or not bare.isalpha():
        return False
    return bool(_SYLLABLE.match(bare))


def _score(text: str, decode: object) -> tuple[int, int, str]:
    """(words that only make sense decoded, words that decode to nonsense, decoded text)."""
    evidence = against = 0
    words = []
    for word in _WORD_SPLIT.split(text):
        bare = word.strip(string.punctuation)
        if not any("\x80" <= ch <= "\xff" for ch in bare):
            continue
        decoded, bad = decode(bare)  # type: ignore[operator]
        words.append((bare, decoded))
        if bad or not is_vietnamese_syllable(decoded):
            against += 1
        elif not is_vietnamese_syllable(bare):
            evidence += 1
    out = text
    for bare, decoded in words:
        out = out.replace(bare, decoded, 1)
    return evidence, against, unicodedata.normalize("NFC", out)


def detect_legacy(text: str) -> str | None:
    """"tcvn3" or "vni" when the text reads as Vietnamese only once decoded, else None."""
    if not text or text.isascii() or _VIET_RANGES.search(text):
        return None
    if any(ord(ch) > 0xFF and not 0x2000 <= ord(ch) <= 0x206F for ch in text):
        return None  # other scripts or symbols: not an old 8-bit font
    best: tuple[int, str] | None = None
    for name, decode in (("tcvn3", _tcvn3), ("vni", _vni)):
        evidence, against, _ = _score(text, decode)
        if evidence and not against and (best is None or evidence > best[0]):
            best = (evidence, name)
    return best[1] if best else None


def repair_legacy(text: str) -> str:
    """Convert TCVN3/VNI mojibake to Unicode when confident; any other text comes back unchanged."""
    encoding = detect_legacy(text)
    if encoding is None:
        return text
    return _score(text, _tcvn3 if encoding == "tcvn3" else _vni)[2]


def legacy_font_encoding(font_name: str | None) -> str | None:
    """The encoding a font name implies: ".VnTime" -> "tcvn3", "VNI-Times" -> "vni", else None."""
    if not font_name:
        return None
    name = font_name.strip().casefold()
    if name.startswith(".vn"):
        return "tcvn3"
    if name.startswith("vni-") or name.startswith("vni "):
        return "vni"
    return None


def decode_legacy(text: str, encoding: str, *, font_name: str = "") -> str:
    """Decode text known (from its font) to be TCVN3 or VNI; ".Vn...H" fonts give capitals."""
    if encoding == "tcvn3":
        upper = font_name.strip().endswith("H")
        return decode_tcvn3(text, upper=upper)
    if encoding == "vni":
        return decode_vni(text)
    return text
