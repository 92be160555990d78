"""The look of a signature box once signed: "Đã ký số: <name> / Ngày ký: <local time> (GMT+7)" in DejaVu Sans.

pyHanko's default stamp uses Courier (WinAnsi), which turns "Nguyễn" into garbage, and its OpenType engine
subsets and embeds the font again in every signature (fontTools + HarfBuzz, tens of milliseconds each). So
the record carries one Vietnamese subset of DejaVu Sans, embedded once when the signature fields are made
(AcroForm /DR /Font /EduVN, glyph ids kept as in the full font), and every stamp only references it: shaping
is a cmap lookup, nothing is embedded per signature. A record without it (fields made elsewhere) gets the
font in the signature's own revision — correct, only bigger.
"""

from __future__ import annotations

import dataclasses
import functools
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.font.api import FontEngine, FontEngineFactory, ShapeResult
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.pdf_utils.writer import BasePdfFileWriter
from pyhanko.stamp import TextStampStyle

from edudesk.core.text import TIME_FORMAT, local_time, nfc

SYSTEM_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
# Package data of edudesk.core.signing (pyproject.toml); pip and pipx install it as a file, which fontTools
# and fpdf2 open.
BUNDLED_FONT = Path(str(files("edudesk.core.signing").joinpath("fonts", "DejaVuSans.ttf")))
RESOURCE = "/EduVN"
# Every letter Vietnamese writes, with room for names and dates: ASCII, Latin-1, Latin Extended-A/B
# (Đ đ Ơ ơ Ư ư), the combining marks of NFD text and Latin Extended Additional (ạ ả ấ ... ỹ).
_RANGES = ((0x20, 0x7E), (0xA0, 0xFF), (0x100, 0x24F), (0x300, 0x323), (0x1EA0, 0x1EF9), (0x2013, 0x2026))


def font_path() -> Path:
    """DejaVu Sans: the system copy when present, else the one bundled beside this module."""
    return SYSTEM_FONT if SYSTEM_FONT.exists() else BUNDLED_FONT


@dataclass(frozen=True)
class _Font:
    cmap: dict[int, int]  # code point -> glyph id (of the full font; the subset keeps the ids)
    widths: dict[int, int]  # glyph id -> advance in 1/1000 em
    subset: bytes
    ascent: int
    descent: int
    bbox: tuple[int, int, int, int]


@functools.cache
def _font() -> _Font:
    from fontTools import subset
    from fontTools.ttLib import TTFont

    full = TTFont(str(font_path()))
    scale = 1000 / full["head"].unitsPerEm
    wanted = [cp for lo, hi in _RANGES for cp in range(lo, hi + 1)]
    best = full.getBestCmap()
    cmap = {cp: full.getGlyphID(best[cp]) for cp in wanted if cp in best}
    widths = {gid: round(full["hmtx"].metrics[full.getGlyphName(gid)][0] * scale) for gid in set(cmap.values())}
    options = subset.Options()
    options.retain_gids = True  # the stamps write full-font glyph ids
    options.notdef_outline = True
    options.drop_tables += ["FFTM"]  # FontForge's timestamps: fontTools cannot subset them and warns per process
    sub = subset.Subsetter(options)
    sub.populate(unicodes=list(cmap))
    sub.subset(full)
    out = io.BytesIO()
    full.save(out)
    head, hhea = full["head"], full["hhea"]
    bbox = (round(head.xMin * scale), round(head.yMin * scale), round(head.xMax * scale), round(head.yMax * scale))
    return _Font(cmap, widths, out.getvalue(), round(hhea.ascent * scale), round(hhea.descent * scale), bbox)


def _to_unicode(font: _Font) -> bytes:
    # Lets viewers copy the stamp's text (and tests read it).
    pairs = sorted((gid, cp) for cp, gid in font.cmap.items())
    seen: dict[int, int] = {}
    for gid, cp in pairs:
        seen.setdefault(gid, cp)
    lines = [b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CIDSystemInfo "
             b"<< /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def /CMapName /Adobe-Identity-UCS def "
             b"/CMapType 2 def 1 begincodespacerange <0000> <FFFF> endcodespacerange"]
    items = list(seen.items())
    for i in range(0, len(items), 100):
        chunk = items[i:i + 100]
        lines.append(b"%d beginbfchar" % len(chunk))
        lines += [b"<%04X> <%s>" % (gid, chr(cp).encode("utf-16-be").hex().upper().encode()) for gid, cp in chunk]
        lines.append(b"endbfchar")
    lines.append(b"endcmap CMapName currentdict /CMap defineresource pop end end")
    return b"\n".join(lines)


def embed_stamp_font(writer: BasePdfFileWriter) -> generic.IndirectObject:
    """Embed the Vietnamese DejaVu subset once and register it as the form's default resource /EduVN."""
    font = _font()
    name = generic.NameObject
    file_stream = generic.StreamObject({name("/Length1"): generic.NumberObject(len(font.subset))},
                                       stream_data=font.subset)
    file_stream.compress()
    descriptor = generic.DictionaryObject({
        name("/Type"): name("/FontDescriptor"), name("/FontName"): name("/DejaVuSans"),
        name("/Flags"): generic.NumberObject(32), name("/ItalicAngle"): generic.NumberObject(0),
        name("/FontBBox"): generic.ArrayObject(map(generic.NumberObject, font.bbox)),
        name("/Ascent"): generic.NumberObject(font.ascent), name("/Descent"): generic.NumberObject(font.descent),
        name("/CapHeight"): generic.NumberObject(font.ascent), name("/StemV"): generic.NumberObject(80),
        name("/FontFile2"): writer.add_object(file_stream)})
    w_array = generic.ArrayObject()
    for gid in sorted(font.widths):
        w_array += [generic.NumberObject(gid), generic.ArrayObject([generic.NumberObject(font.widths[gid])])]
    cid_font = generic.DictionaryObject({
        name("/Type"): name("/Font"), name("/Subtype"): name("/CIDFontType2"), name("/BaseFont"): name("/DejaVuSans"),
        name("/CIDSystemInfo"): generic.DictionaryObject({
            name("/Registry"): generic.TextStringObject("Adobe"),
            name("/Ordering"): generic.TextStringObject("Identity"),
            name("/Supplement"): generic.NumberObject(0)}),
        name("/FontDescriptor"): writer.add_object(descriptor), name("/CIDToGIDMap"): name("/Identity"),
        name("/DW"): generic.NumberObject(600), name("/W"): w_array})
    to_unicode = generic.StreamObject(stream_data=_to_unicode(font))
    to_unicode.compress()
    ref = writer.add_object(generic.DictionaryObject({
        name("/Type"): name("/Font"), name("/Subtype"): name("/Type0"), name("/BaseFont"): name("/DejaVuSans"),
        name("/Encoding"): name("/Identity-H"),
        name("/DescendantFonts"): generic.ArrayObject([writer.add_object(cid_font)]),
        name("/ToUnicode"): writer.add_object(to_unicode)}))
    form = writer.root["/AcroForm"]
    resources = form.setdefault(name("/DR"), generic.DictionaryObject())
    resources.setdefault(name("/Font"), generic.DictionaryObject())[name(RESOURCE)] = ref
    writer.update_container(form)
    return ref


class StampFontEngine(FontEngine):
    """Shapes text with the record's embedded subset: a cmap lookup, glyph ids written as Identity-H."""

    def __init__(self, writer: BasePdfFileWriter, ref: generic.IndirectObject):
        super().__init__(writer, "DejaVuSans-EduVN", embedded_subset=False)
        self.ref = ref

    @property
    def uses_complex_positioning(self) -> bool:
        return False

    def shape(self, txt: str) -> ShapeResult:
        """Glyph ids of `txt` (unknown characters as ?) and its advance in em."""
        font = _font()
        gids = [font.cmap.get(ord(c), font.cmap[ord("?")]) for c in txt]
        ops = b"<" + "".join(f"{g:04X}" for g in gids).encode() + b"> Tj"
        return ShapeResult(graphics_ops=ops, x_advance=sum(font.widths[g] for g in gids) / 1000, y_advance=0)

    def as_resource(self) -> generic.PdfObject:
        """The reference to the embedded font (never dereferenced by the caller)."""
        return self.ref


class StampFontFactory(FontEngineFactory):
    """Finds the record's /EduVN font (embedding it when absent) for each stamp."""

    def create_font_engine(self, writer: BasePdfFileWriter, obj_stream: object = None) -> FontEngine:
        """An engine bound to this document's embedded font."""
        try:
            ref = writer.root["/AcroForm"]["/DR"]["/Font"].raw_get(RESOURCE)
        except KeyError:
            ref = embed_stamp_font(writer)
        return StampFontEngine(writer, ref)


def zone_label(at: datetime, timezone: str) -> str:
    """The office zone's offset at that moment, as a stamp shows it after the time: "GMT+7", "GMT+5:30"."""
    offset = at.astimezone(ZoneInfo(timezone)).utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    hours, rest = divmod(abs(minutes), 60)
    return "GMT" if not minutes else f"GMT{'-' if minutes < 0 else '+'}{hours}" + (f":{rest:02d}" if rest else "")


@dataclass(frozen=True)
class LocalTimeStampStyle(TextStampStyle):
    """A text stamp whose time is the office's local time, "dd/mm/yyyy HH:MM (GMT+7)". pyHanko fills `ts`
    itself, in the machine's zone (UTC on most servers: a 23:30 UTC signature would show the previous day);
    it is replaced here by `at` (the item's moment, from the injected clock), or now."""

    timezone: str = "Asia/Ho_Chi_Minh"
    at: datetime | None = None

    def create_stamp(self, writer: BasePdfFileWriter, box: Any, text_params: dict[str, Any]) -> Any:
        """The stamp, with `ts` the local signing time, `zone` its offset and the signer's name in NFC."""
        params = dict(text_params or {})
        at = self.at or datetime.now(UTC)
        params["ts"], params["zone"] = local_time(at, self.timezone), zone_label(at, self.timezone)
        if isinstance(params.get("signer"), str):
            params["signer"] = nfc(params["signer"])  # an NFD name would show loose combining marks
        return super().create_stamp(writer, box, params)


def stamp_style(timezone: str = "Asia/Ho_Chi_Minh", at: datetime | None = None) -> TextStampStyle:
    """The stamp every signer uses for the visible boxes (PKCS#12, PKCS#11 and remote alike), showing `at`
    (a SignItem's moment) or the time of signing."""
    style = _style(timezone)
    return style if at is None else dataclasses.replace(style, at=at)


@functools.cache
def _style(timezone: str) -> LocalTimeStampStyle:
    return LocalTimeStampStyle(
        stamp_text="Đã ký số: %(signer)s\nNgày ký: %(ts)s (%(zone)s)",
        timestamp_format=TIME_FORMAT,
        text_box_style=TextBoxStyle(font=StampFontFactory(), font_size=8),
        border_width=1,
        timezone=timezone,
    )
