"""BM01/BM02 .docx forms read straight from the XML (no python-docx: one parse, ~1 ms per form).

Tables are read as a list (header row of labels) or as label|value pairs; paragraphs as
"label: value". Runs in TCVN3/VNI fonts are decoded; Wingdings ticks become ☒/☐.
"""

from __future__ import annotations

import zipfile
from typing import Any

from lxml import etree

from edudesk.core.forms.labels import find_fields
from edudesk.core.forms.records import FormResult
from edudesk.core.forms.table import read_list, read_pairs
from edudesk.core.legacy import decode_legacy, legacy_font_encoding, repair_legacy

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
P, R, T, TAB, BR, CR, TBL, TR, TC = (_W + n for n in ("p", "r", "t", "tab", "br", "cr", "tbl", "tr", "tc"))
SDT, SYM, CHECKBOX, TXBX, DEL = (_W + n for n in ("sdt", "sym", "checkBox", "txbxContent", "del"))
RPR, PPR, TCPR, RFONTS, GRIDSPAN = (_W + n for n in ("rPr", "pPr", "tcPr", "rFonts", "gridSpan"))
VAL, ASCII, HANSI, CHAR = (_W + n for n in ("val", "ascii", "hAnsi", "char"))
_SKIP = {TXBX, _MC_FALLBACK, DEL, RPR, PPR, TCPR}
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_comments=True)
_CHECKED_SYMBOLS = {"F0FE", "F0FD", "F078", "F0FB", "F0FC", "F052", "F054", "F0D6"}
_TICK_CHARS = {"þ": "☒", "ý": "☒", "x": "☒", "ü": "☒", "ò": "☒", "R": "☒", "T": "☒", "¨": "☐", "o": "☐",
               "q": "☐", "£": "☐"}
_MARKERS = (b".Vn", b".VN", b"VNI-", b"VNI ", b"Wingdings")
# Every marker holds one of these: three scans of Word's 350 KB styles.xml instead of five, in the common case
# of a document that names none of them.
_HINTS = (b".V", b"VNI", b"Wingdings")


def _names_legacy_font(*parts: bytes) -> bool:
    hinted = [part for part in parts if any(hint in part for hint in _HINTS)]
    return any(marker in part for part in hinted for marker in _MARKERS)


class _Fonts:
    """Font of each run, only worked out when the document mentions a legacy or symbol font."""

    def __init__(self, zf: zipfile.ZipFile, active: bool) -> None:
        self.active = active
        self.default = ""
        self.styles: dict[str, str] = {}
        if active and "word/styles.xml" in zf.namelist():
            root = etree.fromstring(zf.read("word/styles.xml"), _PARSER)
            for el in root.iter(RFONTS):
                if el.getparent() is not None and el.getparent().getparent() is not None:
                    owner = el.getparent().getparent()
                    font = el.get(ASCII) or el.get(HANSI) or ""
                    style_id = owner.get(_W + "styleId")
                    if style_id:
                        self.styles.setdefault(style_id, font)
                    elif not self.default:
                        self.default = font  # docDefaults/rPrDefault

    def of_run(self, run: etree._Element, para_font: str) -> str:
        """The run's own font, else its paragraph's."""
        rpr = run.find(RPR)
        fonts = rpr.find(RFONTS) if rpr is not None else None
        if fonts is not None and (fonts.get(ASCII) or fonts.get(HANSI)):
            return fonts.get(ASCII) or fonts.get(HANSI) or ""
        return para_font

    def of_paragraph(self, para: etree._Element) -> str:
        """The font of the paragraph's style, else the document default."""
        style = para.find(f"{PPR}/{_W}pStyle")
        name = style.get(VAL) if style is not None else "Normal"
        return self.styles.get(name or "", "") or self.styles.get("Normal", "") or self.default


def _checkbox(el: etree._Element) -> str:
    checked = el.find(_W + "checked")
    if checked is None:
        default = el.find(_W + "default")
        on = default is not None and default.get(VAL) in ("1", "true", "on")
    else:
        on = checked.get(VAL) in (None, "1", "true", "on")
    return "☒ " if on else "☐ "


def _collect(el: etree._Element, out: list[str], fonts: _Fonts, font: str, state: dict[str, bool]) -> None:
    for child in el:
        tag = child.tag
        if tag == T:
            text = child.text or ""
            if fonts.active and font:
                if font.startswith("Wingdings"):
                    text = "".join(_TICK_CHARS.get(ch, ch) for ch in text)
                elif encoding := legacy_font_encoding(font):
                    decoded = decode_legacy(text, encoding, font_name=font)
                    state["legacy"] |= decoded != text
                    text = decoded
            out.append(text)
        elif tag == R:
            _collect(child, out, fonts, fonts.of_run(child, font) if fonts.active else "", state)
        elif tag == TAB:
            out.append("\t")
        elif tag in (BR, CR):
            out.append("\n")
        elif tag == CHECKBOX:
            out.append(_checkbox(child))
        elif tag == SYM:
            out.append("☒ " if (child.get(CHAR) or "").upper() in _CHECKED_SYMBOLS else "☐ ")
        elif tag not in _SKIP and isinstance(tag, str):
            _collect(child, out, fonts, font, state)


def _paragraph(p: etree._Element, fonts: _Fonts, state: dict[str, bool]) -> str:
    out: list[str] = []
    _collect(p, out, fonts, fonts.of_paragraph(p) if fonts.active else "", state)
    text = "".join(out)
    # Legacy text whose font was lost (pasted, restyled): labels must be readable too.
    fixed = repair_legacy(text)
    state["legacy"] |= fixed != text
    return fixed


def _blocks(el: etree._Element) -> list[etree._Element]:
    """Paragraphs and tables in document order; content controls are unwrapped."""
    found = []
    for child in el:
        if child.tag in (P, TBL):
            found.append(child)
        elif child.tag in (SDT, _W + "sdtContent", _W + "customXml"):
            found.extend(_blocks(child))
    return found


Rows = list[list[str]]


def _table(tbl: etree._Element, fonts: _Fonts, state: dict[str, bool]) -> tuple[Rows, Rows]:
    """(cells per row, cells per row with merged cells repeated over the columns they span)."""
    plain, spanned = [], []
    for tr in tbl.iterchildren(TR):
        row, wide = [], []
        for tc in tr.iterchildren(TC):
            text = "\n".join(_paragraph(p, fonts, state) for p in _blocks(tc) if p.tag == P)
            span = tc.find(f"{TCPR}/{GRIDSPAN}")
            width = int(span.get(VAL, "1")) if span is not None and span.get(VAL, "1").isdigit() else 1
            row.append(text)
            wide.extend([text] * min(width, 50))
        plain.append(row)
        spanned.append(wide)
    return plain, spanned


def read_docx(zf: zipfile.ZipFile, max_rows: int) -> tuple[FormResult, bool]:
    """(result, truncated) for a .docx already checked against zip bombs."""
    data = zf.read("word/document.xml")
    styles = zf.read("word/styles.xml") if "word/styles.xml" in zf.namelist() else b""
    fonts = _Fonts(zf, _names_legacy_font(data, styles))
    root = etree.fromstring(data, _PARSER)
    body = root.find(_W + "body")
    result = FormResult("docx")
    state = {"legacy": False}
    truncated = False
    lines: list[str] = []
    for block in _blocks(body if body is not None else root):
        if block.tag == P:
            lines.append(_paragraph(block, fonts, state))
            continue
        for nested in block.iter(TBL):
            plain, spanned = _table(nested, fonts, state)
            listed = read_list(spanned, max_rows)
            if listed and listed[0].records:
                result.records.extend(listed[0].records)
                result.texts.extend(listed[0].texts)
                result.is_list, truncated = True, truncated or listed[1]
                continue
            form = read_pairs(plain)
            _take(result, form.records[0])
            result.texts.extend(form.texts)
    for line in lines:
        pairs = find_fields(line)
        if pairs:
            _take(result, dict(pairs))
        elif line.strip():
            result.texts.append(line)
    for name in zf.namelist():
        if name.startswith("word/header") and name.endswith(".xml"):
            header = etree.fromstring(zf.read(name), _PARSER)
            result.texts.append(" ".join(t.text or "" for t in header.iter(T)))
    result.heading = " ".join(result.texts)
    result.legacy = state["legacy"]
    return result, truncated


def _take(result: FormResult, record: dict[str, Any]) -> None:
    """All label|value tables and paragraphs of one form describe the same person.

    Beside a list table they only say who sends it ("Đơn vị: Phòng Đào tạo").
    """
    if not any(v not in (None, "") for v in record.values()):
        return
    if result.is_list:
        result.unit = result.unit or str(record.get("unit") or "")
        return
    if not result.records:
        result.records.append({})
    target = result.records[0]
    for field, value in record.items():
        if value not in (None, "") and not target.get(field):
            target[field] = value
        target.setdefault(field, value)
