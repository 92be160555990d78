"""The signature page(s) appended to a record, and what every page of it carries: a heading per stage and a
labelled box per signer; the place-and-date line right-aligned above the boxes (a read-only text field, dotted
until the issuing signature fills it with the issuing day); "Trang x/y" at the foot of every page, the record's
own pages included, counted over the final document. All of it in the record's embedded stamp font (/EduVN).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from io import BytesIO

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.rw_common import find_inherited_value_in_tree
from pyhanko.pdf_utils.writer import BasePdfFileWriter

from edudesk.core.signing import stamp
from edudesk.core.signing.recordtext import date_line, page_label
from edudesk.core.signing.spec import STAGE_LABELS, FieldSpec
from edudesk.core.text import nfc

# In PDF points (A4): three boxes a row, a two-line label under each, a heading per stage.
PAGE_W, PAGE_H, MARGIN = 595, 842, 50
COLUMNS, GAP, BOX_H, LABEL_SIZE, ROW_H, HEADING_H = 3, 15, 46, 8, 80, 24
BOX_W = (PAGE_W - 2 * MARGIN - (COLUMNS - 1) * GAP) // COLUMNS
DATE_FIELD = "ngay_phat_hanh"  # the place-and-date line's text field (not a signature field)
DATE_SIZE, DATE_W, DATE_H, DATE_ROW = 10, 300, 16, 26
SLANT = 0.2  # the line is written in italics (Decree 30/2020); a slanted regular face, the one font embedded
FOOT_SIZE, FOOT_RIGHT, FOOT_Y = 8, 42.5, 24  # "Trang x/y": bottom right, 15 mm from the edge
Box = tuple[int, int, int, int]
N = generic.NameObject


@dataclass
class SigPage:
    """One signature page: texts (x, y, size, text), signature boxes, and where the date line goes."""

    texts: list[tuple[float, float, float, str]] = field(default_factory=list)
    boxes: list[tuple[FieldSpec, Box]] = field(default_factory=list)
    date_box: Box | None = None


def layout(ordered: Sequence[FieldSpec], font: stamp.StampFontEngine, *, dated: bool) -> list[SigPage]:
    """Where every heading, box and label goes (with the date line above the boxes when `dated`); a new page
    when the next row would not fit."""
    page = SigPage()
    pages = [page]
    y = PAGE_H - MARGIN - 16
    page.texts += [(MARGIN, y, 13, "TRANG CHỮ KÝ SỐ CỦA HỌC BẠ"),
                   (MARGIN, y - 16, 8, "Các ô được ký số lần lượt: giáo viên bộ môn, giáo viên chủ nhiệm, "
                                       "ban giám hiệu, ký phát hành.")]
    y -= 30
    if dated:
        page.date_box = (PAGE_W - MARGIN - DATE_W, y - DATE_H, PAGE_W - MARGIN, y)
        y -= DATE_ROW
    for stage in sorted({f.stage for f in ordered}):
        group = [f for f in ordered if f.stage == stage]
        for row_start in range(0, len(group), COLUMNS):
            heading = row_start == 0
            if y - ROW_H - (HEADING_H if heading else 0) < MARGIN:
                page = SigPage()
                pages.append(page)
                y = PAGE_H - MARGIN
            if heading:
                y -= HEADING_H
                page.texts.append((MARGIN, y + 6, 11, f"{int(stage)}. {STAGE_LABELS[stage]}"))
            top = y - 4
            for col, spec in enumerate(group[row_start:row_start + COLUMNS]):
                x = MARGIN + col * (BOX_W + GAP)
                page.boxes.append((spec, (x, top - BOX_H, x + BOX_W, top)))
                for n, line in enumerate(_wrap(font, nfc(spec.label), BOX_W, LABEL_SIZE)):
                    page.texts.append((x, top - BOX_H - 11 - n * 10, LABEL_SIZE, line))
            y -= ROW_H
    return pages


def _wrap(font: stamp.StampFontEngine, text: str, width: float, size: float, lines: int = 2) -> list[str]:
    """At most `lines` lines of `text` fitting `width`, the last one cut with an ellipsis if need be."""
    def _width(line: str) -> float:
        return font.shape(line).x_advance * size

    out: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if current and _width(candidate) > width:
            out.append(current)
            current = word
        else:
            current = candidate
    out.append(current)
    if len(out) > lines:
        last = " ".join(out[lines - 1:])
        while last and _width(last + "…") > width:
            last = last[:-1]
        out = out[:lines - 1] + [last.rstrip() + "…"]
    return out


def _foot(font: stamp.StampFontEngine, label: str, width: float) -> bytes:
    """The page number, right-aligned at the foot of a page `width` points wide (text space = page space)."""
    x = width - FOOT_RIGHT - font.shape(label).x_advance * FOOT_SIZE
    return b"BT 0 g %s %g Tf 1 0 0 1 %g %g Tm %s ET" % (stamp.RESOURCE.encode(), FOOT_SIZE, x, FOOT_Y,
                                                        font.shape(label).graphics_ops)


def page_object(writer: BasePdfFileWriter, font: stamp.StampFontEngine, page: SigPage,
                label: str) -> generic.DictionaryObject:
    """A signature page: grey box outlines, the texts and the page number, in the record's stamp font."""
    ops = [b"q 0.6 G 0.75 w"]
    ops += [b"%d %d %d %d re S" % (x1, y1, x2 - x1, y2 - y1) for _spec, (x1, y1, x2, y2) in page.boxes]
    ops.append(b"Q BT 0 g")
    for x, y, size, text in page.texts:
        ops.append(b"%s %g Tf 1 0 0 1 %g %g Tm %s" % (stamp.RESOURCE.encode(), size, x, y,
                                                     font.shape(text).graphics_ops))
    ops += [b"ET", _foot(font, label, PAGE_W)]
    content = generic.StreamObject(stream_data=b"\n".join(ops))
    content.compress()
    return generic.DictionaryObject({
        N("/Type"): N("/Page"),
        N("/MediaBox"): generic.ArrayObject(map(generic.FloatObject, (0, 0, PAGE_W, PAGE_H))),
        N("/Resources"): _fonts(font.ref),
        N("/Contents"): writer.add_object(content)})


def _fonts(ref: generic.IndirectObject) -> generic.DictionaryObject:
    """A resource dictionary naming the record's stamp font /EduVN."""
    return generic.DictionaryObject({N("/Font"): generic.DictionaryObject({N(stamp.RESOURCE): ref})})


# The page's (possibly rotated) visible box -> a matrix from "upright" coordinates to the page's own space.
_ROTATIONS = {0: lambda x, y, w, h: (1, 0, 0, 1, x, y), 90: lambda x, y, w, h: (0, 1, -1, 0, x + w, y),
              180: lambda x, y, w, h: (-1, 0, 0, -1, x + w, y + h), 270: lambda x, y, w, h: (0, -1, 1, 0, x, y + h)}


def number_pages(writer: BasePdfFileWriter, font: stamp.StampFontEngine, count: int, total: int) -> None:
    """"Trang x/y" at the foot of each of the first `count` pages (the record's own), upright as the page is
    shown; the page's own content is wrapped in q/Q so whatever state it leaves does not move the number."""
    save = writer.add_object(generic.StreamObject(stream_data=b"q"))
    for index in range(count):
        page_ref, _resources = writer.find_page_for_modification(index)
        page = page_ref.get_object()
        box = find_inherited_value_in_tree(page, "/CropBox", "/Parent") or \
            find_inherited_value_in_tree(page, "/MediaBox", "/Parent")
        x1, y1, x2, y2 = (float(v) for v in box)
        x, y, w, h = min(x1, x2), min(y1, y2), abs(x2 - x1), abs(y2 - y1)
        rotate = int(find_inherited_value_in_tree(page, "/Rotate", "/Parent") or 0) % 360
        rotate = rotate if rotate in _ROTATIONS else 0
        matrix = b" ".join(b"%g" % v for v in _ROTATIONS[rotate](x, y, w, h))
        upright_w = w if rotate in (0, 180) else h
        stream = generic.StreamObject(stream_data=b"Q q %s cm %s Q" % (
            matrix, _foot(font, page_label(index + 1, total), upright_w)))
        writer.add_stream_to_page(index, save, prepend=True)
        writer.add_stream_to_page(index, writer.add_object(stream), resources=_fonts(font.ref))


def _appearance(writer: BasePdfFileWriter, font_ref: generic.IndirectObject, text: str,
                width: float, height: float) -> generic.IndirectObject:
    """The date line's look: right-aligned, slanted, in the record's stamp font."""
    engine = stamp.StampFontEngine(writer, font_ref)
    shaped = engine.shape(text)
    x = max(width - 2 - shaped.x_advance * DATE_SIZE, 0)
    data = b"/Tx BMC q BT 0 g %s %g Tf 1 0 %g 1 %g 4 Tm %s ET Q EMC" % (
        stamp.RESOURCE.encode(), DATE_SIZE, SLANT, x, shaped.graphics_ops)
    return writer.add_object(generic.StreamObject({
        N("/Type"): N("/XObject"), N("/Subtype"): N("/Form"),
        N("/BBox"): generic.ArrayObject(map(generic.FloatObject, (0, 0, width, height))),
        N("/Resources"): _fonts(font_ref)}, stream_data=data))


def add_date_field(writer: BasePdfFileWriter, font: stamp.StampFontEngine, page_ref: generic.IndirectObject,
                   box: Box) -> None:
    """The read-only place-and-date text field on the signature page, dotted until the record is issued."""
    text = date_line("", None, "UTC")
    x1, y1, x2, y2 = box
    widget = writer.add_object(generic.DictionaryObject({
        N("/FT"): N("/Tx"), N("/T"): generic.TextStringObject(DATE_FIELD), N("/Ff"): generic.NumberObject(1),
        N("/V"): generic.TextStringObject(text), N("/Q"): generic.NumberObject(2),
        N("/DA"): generic.TextStringObject(f"{stamp.RESOURCE} {DATE_SIZE} Tf 0 g"),
        N("/Type"): N("/Annot"), N("/Subtype"): N("/Widget"), N("/F"): generic.NumberObject(4),
        N("/Rect"): generic.ArrayObject(map(generic.FloatObject, box)), N("/P"): page_ref,
        N("/AP"): generic.DictionaryObject({N("/N"): _appearance(writer, font.ref, text, x2 - x1, y2 - y1)})}))
    fields = writer.root["/AcroForm"]["/Fields"]
    fields.append(widget)
    writer.update_container(fields)
    page = page_ref.get_object()
    annots = page.get("/Annots")
    if annots is None:
        page[N("/Annots")] = generic.ArrayObject([widget])
        writer.update_container(page)
    else:
        annots.append(widget)
        writer.update_container(annots)


def fill_date_line(pdf: bytes, text: str) -> bytes:
    """The record with its place-and-date line set to `text` (an incremental update); unchanged when the
    record has no such line (made before it existed, or without an issuing signature)."""
    writer = IncrementalPdfFileWriter(BytesIO(pdf))
    if "/AcroForm" not in writer.root:
        return pdf
    form = writer.root["/AcroForm"]
    found = next((ref.get_object() for ref in form["/Fields"] if ref.get_object().get("/T") == DATE_FIELD), None)
    if found is None:
        return pdf
    x1, y1, x2, y2 = (float(v) for v in found["/Rect"])
    font_ref = form["/DR"]["/Font"].raw_get(stamp.RESOURCE)
    found[N("/V")] = generic.TextStringObject(nfc(text))
    found[N("/AP")] = generic.DictionaryObject({N("/N"): _appearance(writer, font_ref, nfc(text), x2 - x1, y2 - y1)})
    writer.update_container(found)
    out = BytesIO()
    writer.write(out)
    return out.getvalue()
