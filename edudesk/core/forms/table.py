"""Rows of cells (xlsx, csv, docx tables, pasted tables) -> records: a list or a label|value form."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from edudesk.core.forms.labels import ID_FIELDS, NAME_FIELDS, clean_value, field_for_label, find_fields
from edudesk.core.forms.records import FormResult, Record
from edudesk.core.forms.values import looks_like_id, looks_like_name, text_value

HEADER_SEARCH_ROWS = 15  # BM-CNTT31 puts school, unit, title and date above the header row
_NUMBERING = re.compile(r"^\(?\d{1,2}\)?$")  # the "(1) (2) (3)" row under many Vietnamese headers
_MAX_EMPTY_ROWS_FACTOR = 4


def _label_fields(cells: Sequence[Any]) -> list[str | None]:
    return [field_for_label(c.strip()) if isinstance(c, str) else None for c in cells]


def _is_header(cells: Sequence[Any]) -> bool:
    fields = _label_fields(cells)
    labelled = [f for f in fields if f]
    filled = sum(1 for c in cells if text_value(c))
    keys = set(labelled) & (NAME_FIELDS | ID_FIELDS)
    # A label|value row ("Họ và tên | Nguyễn Văn An | Ngày sinh | ...") has half its cells labelled.
    return len(set(labelled)) >= 2 and bool(keys) and len(labelled) * 10 >= filled * 7


def _filled(cells: Sequence[Any]) -> list[Any]:
    return [c for c in cells if c is not None and (not isinstance(c, str) or c.strip())]


def _sub_header(cells: Sequence[Any], filled: list[Any]) -> bool:
    # Labels are text without digits; every data row has an ID with digits: skip the folding.
    if not filled or any(not isinstance(c, str) or any(ch.isdigit() for ch in c) for c in filled):
        return False
    return all(field_for_label(c.strip()) for c in filled)


def read_list(rows: Iterable[Sequence[Any]], max_rows: int) -> tuple[FormResult, bool] | None:
    """(result, truncated) when a list header is found in the first rows, else None."""
    it = iter(rows)
    titles: list[str] = []
    columns: list[str | None] = []
    for _ in range(HEADER_SEARCH_ROWS):
        cells = next(it, None)
        if cells is None:
            return None
        if _is_header(cells):
            columns = _label_fields(cells)
            break
        # Each cell on its own: merged title cells sit side by side ("ĐƠN VỊ: ..." | "Độc lập ...").
        titles.extend(text_value(c) for c in cells if text_value(c))
    else:
        return None
    result = FormResult("", texts=titles, is_list=True)
    for title in titles:
        for field, value in find_fields(title):
            if field == "unit" and value and not result.unit:
                result.unit = value
    seen = 0
    for cells in it:
        seen += 1
        if seen > max_rows * _MAX_EMPTY_ROWS_FACTOR + 100:
            break  # a sheet padded with empty rows: stop instead of walking a million of them
        filled = _filled(cells)
        if not filled or all(_NUMBERING.match(str(v).strip()) for v in filled):
            continue
        if _sub_header(cells, filled):
            for i, sub in enumerate(_label_fields(cells)):
                if sub:
                    columns.extend([None] * (i + 1 - len(columns)))
                    columns[i] = sub
            continue
        record: Record = {}
        for i, column in enumerate(columns):
            if not column or i >= len(cells) or column in record:
                continue
            raw = cells[i]
            value = clean_value(raw) if isinstance(raw, str) else raw
            if value is not None and value != "":
                record[column] = value
        if not _is_data_row(record):
            continue
        if len(result.records) >= max_rows:
            return result, True
        result.records.append(record)
    return result, False


def _is_data_row(record: Record) -> bool:
    if any(looks_like_id(text_value(record.get(f))) for f in ID_FIELDS):
        return True
    # Footers ("Người lập biểu", "Tổng cộng: 5") have no ID; a real row without one keeps its Stt.
    names = [text_value(record.get(f)) for f in NAME_FIELDS if record.get(f)]
    return bool(names) and all(looks_like_name(n) for n in names) and bool(record.get("index"))


def read_pairs(rows: Iterable[Sequence[Any]], max_cells: int = 400) -> FormResult:
    """A label|value form: each label cell's value is the next cell; "label: value" text too."""
    result = FormResult("")
    record: Record = {}
    count = 0
    for cells in rows:
        fields = _label_fields(cells)
        i = 0
        while i < len(cells):
            count += 1
            if count > max_cells:
                break
            field, cell = fields[i], text_value(cells[i])
            if field:
                # The value is the next filled cell unless that is a label (merged cells leave gaps).
                j = i + 1
                while j < len(cells) and not fields[j] and not text_value(cells[j]):
                    j += 1
                nxt = cells[j] if j < len(cells) and not fields[j] else ""
                value = clean_value(nxt) if isinstance(nxt, str) else nxt
                if field not in record or not text_value(record[field]):
                    record[field] = value
                i = j + 1 if nxt != "" else j
                continue
            pairs = find_fields(cell) if cell else []
            for f, v in pairs:
                if f not in record or not text_value(record[f]):
                    record[f] = v
            if cell and not pairs:
                result.texts.append(cell)
            i += 1
    result.records.append(record)
    return result
