"""BM-CNTT31 lists from .xlsx (openpyxl, read-only) and .csv files."""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import warnings
import zipfile
from collections.abc import Iterator
from typing import Any

from edudesk.core.forms.records import FormResult
from edudesk.core.forms.table import read_list, read_pairs
from edudesk.core.legacy import decode_legacy, detect_legacy, legacy_font_encoding, repair_legacy

MAX_COLUMNS = 40  # a list has ~6 columns; a sheet claiming 16,384 is not read that far
MAX_SHEETS = 5
_PAIR_ROWS = 60
_MARKERS = (b".Vn", b".VN", b"VNI-", b"VNI ")


def _decoded(cell: Any, state: dict[str, bool]) -> Any:
    value = cell.value
    if not isinstance(value, str):
        return value
    font = getattr(getattr(cell, "font", None), "name", None)
    encoding = legacy_font_encoding(font)
    if encoding:
        decoded = decode_legacy(value, encoding, font_name=font or "")
        state["legacy"] |= decoded != value
        return decoded
    return _repaired(value, state)


def _repaired(value: Any, state: dict[str, bool]) -> Any:
    # Legacy text without a legacy font (copied between workbooks): header labels must match too.
    if isinstance(value, str) and not value.isascii():
        fixed = repair_legacy(value)
        state["legacy"] |= fixed != value
        return fixed
    return value


def _trimmed(values: list[Any]) -> list[Any]:
    # Read-only rows come padded to MAX_COLUMNS; the padding would be walked for every row.
    end = len(values)
    while end and values[end - 1] is None:
        end -= 1
    return values[:end]


def _rows(ws: Any, legacy_fonts: bool, state: dict[str, bool]) -> Iterator[list[Any]]:
    if not legacy_fonts:
        for values in ws.iter_rows(max_col=MAX_COLUMNS, values_only=True):
            yield [_repaired(v, state) for v in _trimmed(list(values))]
        return
    for cells in ws.iter_rows(max_col=MAX_COLUMNS):
        yield _trimmed([_decoded(c, state) for c in cells])


def read_xlsx(payload: bytes, zf: zipfile.ZipFile, max_rows: int) -> tuple[FormResult, bool]:
    """(result, truncated) for a workbook already checked against zip bombs."""
    styles = zf.read("xl/styles.xml") if "xl/styles.xml" in zf.namelist() else b""
    legacy_fonts = any(m in styles for m in _MARKERS)
    state = {"legacy": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # openpyxl warns about extensions it does not read
        import openpyxl  # imported at the first sheet read, not at start

        wb = openpyxl.load_workbook(io.BytesIO(payload), read_only=True, data_only=True)
    try:
        titles: list[str] = []
        for ws in wb.worksheets[:MAX_SHEETS]:
            found = read_list(_rows(ws, legacy_fonts, state), max_rows)
            if found and found[0].records:
                result, truncated = found
                result.source, result.legacy = "xlsx", state["legacy"]
                result.heading = " ".join(result.texts)
                return result, truncated
            if found:
                titles.extend(found[0].texts)
        # No list: maybe a label|value form laid out in a sheet.
        first = wb.worksheets[0] if wb.worksheets else None
        rows = itertools.islice(_rows(first, legacy_fonts, state), _PAIR_ROWS) if first else iter(())
        result = read_pairs(rows)
        result.source, result.legacy = "xlsx", state["legacy"]
        result.texts[:0] = titles
        result.heading = " ".join(result.texts)
        return result, False
    finally:
        wb.close()


def decode_text_file(payload: bytes) -> str:
    """Bytes of a text export: UTF-8/UTF-16 with or without BOM, else Windows-1258 or TCVN3 bytes."""
    if payload.startswith(codecs.BOM_UTF8):
        return payload[3:].decode("utf-8", errors="replace")
    if payload.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return payload.decode("utf-16", errors="replace")
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        pass
    latin = payload.decode("latin-1")
    if detect_legacy(latin[:4096]):
        return latin  # TCVN3/VNI bytes: keep the code points the legacy tables expect
    # Excel's "CSV" in a Vietnamese Windows is Windows-1258 (decomposed tone marks).
    return payload.decode("cp1258", errors="replace")


def read_csv(payload: bytes, max_rows: int) -> tuple[FormResult, bool]:
    """(result, truncated) for a .csv list with the BM-CNTT31 columns."""
    text = decode_text_file(payload)
    sample = text[:4096]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    state = {"legacy": False}
    rows = ([_repaired(c, state) for c in row] for row in csv.reader(io.StringIO(text), dialect))
    found = read_list(rows, max_rows)
    if found is None:
        result = read_pairs(itertools.islice(csv.reader(io.StringIO(text), dialect), _PAIR_ROWS))
        truncated = False
    else:
        result, truncated = found
    result.source, result.legacy = "csv", state["legacy"]
    result.heading = " ".join(result.texts)
    return result, truncated
