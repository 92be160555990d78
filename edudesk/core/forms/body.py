"""The mail body: "label: value" lines (one person or several) and tables pasted from Excel."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from edudesk.core.forms.labels import NAME_FIELDS, find_fields
from edudesk.core.forms.records import FormResult, Record, is_person
from edudesk.core.forms.table import read_list

_BLOCK_TAGS = {"p", "div", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote", "pre"}
# Quoted earlier mails and signatures: their fields are not this request's.
_QUOTE_HEADER = re.compile(
    r"^(On .{0,200} wrote:|Vào .{0,200} đã viết:|-----\s*Original Message|-----\s*Thư gốc|\*?(From|Từ)\s*:.+@"
    r"|_{10,}\s*$)", re.I
)
# Gmail wraps a long attribution: "Vào Th 2, 9 thg 9, 2024 lúc 08:15 Tổ Tin học <" / "cntt@...> đã viết:"
_ATTRIBUTION_START = re.compile(r"^(On|Vào)\s.{0,200}$", re.I)
_ATTRIBUTION_END = re.compile(r"(wrote|đã viết)\s*:\s*$", re.I)
_FORWARDED = re.compile(r"-{3,}\s*(Forwarded message|Thư chuyển tiếp|Tin nhắn đã chuyển tiếp)", re.I)
MAX_BODY_CHARS = 200_000


class _TextOfHtml(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Blocks start lines, cells start tab-separated columns."""
        if tag in ("script", "style", "head"):
            self.skip += 1
        elif tag == "br" or tag in _BLOCK_TAGS:
            self.out.append("\n")
        elif tag in ("td", "th"):
            self.out.append("\t")

    def handle_endtag(self, tag: str) -> None:
        """Blocks end lines."""
        if tag in ("script", "style", "head"):
            self.skip = max(0, self.skip - 1)
        elif tag in _BLOCK_TAGS:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        """Text outside <script>, <style> and <head>."""
        if not self.skip:
            self.out.append(data.replace("\n", " "))


def html_to_text(html: str) -> str:
    """Readable text of an HTML body: blocks and <br> become lines, table cells become tabs."""
    parser = _TextOfHtml()
    parser.feed(html[:MAX_BODY_CHARS])
    parser.close()
    lines = (line.strip(" \xa0") for line in "".join(parser.out).split("\n"))
    return "\n".join(line for line in lines if line)


def _own_lines(text: str) -> list[str]:
    lines = []
    forwarded = False  # a forwarded request is the request: its "From:" header is not a quote
    all_lines = text[:MAX_BODY_CHARS].splitlines()
    for index, line in enumerate(all_lines):
        forwarded = forwarded or bool(_FORWARDED.search(line))
        if line.rstrip() == "--" or (_QUOTE_HEADER.match(line.strip()) and not forwarded):
            break
        following = all_lines[index + 1].strip() if index + 1 < len(all_lines) else ""
        if not forwarded and _ATTRIBUTION_START.match(line.strip()) and _ATTRIBUTION_END.search(following) \
                and len(line) + len(following) < 300:
            break
        if not line.lstrip().startswith(">"):
            lines.append(line)
    return lines


def _cells(line: str) -> list[str] | None:
    for sep in ("\t", "|", ";"):
        if line.count(sep) >= 2:
            return [c.strip() for c in line.strip().strip("|").split(sep)]
    return None


def read_body(text: str, max_rows: int) -> tuple[FormResult, bool]:
    """(result, truncated): persons written in the body; other lines kept for classification."""
    result = FormResult("body")
    state: dict[str, Any] = {"record": {}, "pending": None, "truncated": False}
    table: list[tuple[str, list[str]]] = []

    def flush_table() -> None:
        """A run of tabular lines: a list if it has a header, else ordinary lines."""
        found = read_list([cells for _, cells in table], max_rows) if len(table) >= 2 else None
        if found and found[0].records:
            result.records.extend(found[0].records)
            result.is_list, state["truncated"] = True, found[1]
        else:
            for line, _ in table:
                _key_values(line, result, state)
        table.clear()

    for line in _own_lines(text):
        cells = _cells(line)
        if cells:
            table.append((line, cells))
            continue
        flush_table()
        _key_values(line, result, state)
    flush_table()
    if state["record"]:
        result.records.append(state["record"])
    return result, state["truncated"]


def _key_values(line: str, result: FormResult, state: dict[str, Any]) -> None:
    record: Record = state["record"]
    pairs = find_fields(line)
    if not pairs:
        if state["pending"] and line.strip():
            record[state["pending"]], state["pending"] = line.strip(), None
        elif line.strip():
            result.texts.append(line.strip())
        return
    for field, value in pairs:
        # A label seen again starts the next person ("Họ và tên: A ... Họ và tên: B").
        if field in record and record[field] and is_person(record) and (field in NAME_FIELDS or value):
            result.records.append(record)
            record = state["record"] = {}
        if value or field not in record:
            record[field] = value
        if field == "unit" and value and not result.unit:
            result.unit = value
    state["pending"] = pairs[-1][0] if not pairs[-1][1] else None
