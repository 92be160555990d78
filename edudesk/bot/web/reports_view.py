"""What the console's /reports page shows of a BM03: its words, the report's tables as cells (the same tables and
number formats as the .xlsx and .pdf files), the units to drill into, and the charts as inline SVG that the
console's Content-Security-Policy lets the browser draw."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from markupsafe import Markup

from edudesk.core.reports.figures import Bm03Figures, GroupRow
from edudesk.core.reports.values import shown
from edudesk.core.reports.xlsx import bm03_tables
from edudesk.core.words import t

PAGE_TABLES = ("groups", "steps", "slowest", "accounts", "problems", "overdue")  # by_kind and days: the charts
NUMERIC = frozenset({"int", "percent", "hours"})

# The page's own words: `reports.label.<key>` in the words catalogues.
PAGE_WORDS = ("title", "nav", "from", "to", "show", "this_month", "last_month", "this_year", "all_units", "back_all",
              "unit", "unit_col", "make", "make_xlsx", "make_pdf", "make_hint", "summary", "overdue_now", "charts",
              "units", "units_hint", "archive", "archive_none", "archive_hint", "made_at", "period", "fmt", "made_by",
              "size", "download", "scheduled", "bad_date", "bad_order", "too_long", "bad_format", "no_requests", "none")


def page_words(lang: str) -> dict[str, str]:
    """The page's own words in `lang` ("en", else Vietnamese), placeholders left for the caller to fill."""
    return {key: t(f"reports.label.{key}", lang) for key in PAGE_WORDS}


def page_tables(fig: Bm03Figures, lang: str, existing: set[int]) -> list[dict[str, Any]]:
    """The report's tables for the page, each cell {text, request, numeric}: `request` is the number to link (0:
    none; only a request that still exists has a page), `numeric` aligns the column."""
    def cells(row: tuple[Any, ...], kinds: list[str]) -> list[dict[str, Any]]:
        return [{"text": shown(v, k, lang), "request": v if k == "request" and v in existing else 0,
                 "numeric": k in NUMERIC} for v, k in zip(row, kinds, strict=True)]

    out = []
    for table in bm03_tables(fig, lang):
        if table.key not in PAGE_TABLES:
            continue
        kinds = [c.kind for c in table.columns]
        out.append({"key": table.key, "heading": table.heading, "columns": [c.title for c in table.columns],
                    "numeric": [k in NUMERIC for k in kinds], "rows": [cells(r, kinds) for r in table.rows],
                    "total": cells(table.total, kinds) if table.total else None, "notes": table.notes})
    return out


def request_ids(fig: Bm03Figures) -> set[int]:
    """Every request number the page's tables name (slowest and overdue)."""
    return {r.request_id for s in fig.steps for r in s.slowest} | {o.request_id for o in fig.overdue}


def unit_totals(fig: Bm03Figures) -> list[GroupRow]:
    """The groups added up per unit ("" = requests naming none), most requests first."""
    units: dict[str, list[GroupRow]] = {}
    for g in fig.groups:
        units.setdefault(g.unit, []).append(g)
    counts = ("received", "approved", "rejected", "done", "open")
    rows = [GroupRow(kind="", population="", unit=u, **{c: sum(getattr(g, c) for g in gs) for c in counts})
            for u, gs in units.items()]
    return sorted(rows, key=lambda r: (-r.received, r.unit))


def size_text(size: int, lang: str) -> str:
    """A file size as people read it: "12,3 KB"."""
    text = f"{size / 1024:.1f} KB" if size < 1024 * 1024 else f"{size / 1024 / 1024:.1f} MB"
    return text if lang == "en" else text.replace(".", ",")


# The SVG the charts draw, in a page: these elements and attributes only, styles as presentation attributes.
ELEMENTS = frozenset({"svg", "g", "path", "rect", "circle", "line", "polyline", "polygon", "text", "tspan", "use",
                      "defs", "clipPath", "title", "desc"})
ATTRIBUTES = frozenset({"viewBox", "version", "role", "aria-label", "id", "d", "x", "y", "x1", "y1", "x2", "y2",
                        "cx", "cy", "r", "width", "height", "points", "transform", "clip-path", "href"})
PRESENTATION = frozenset({"fill", "fill-opacity", "fill-rule", "stroke", "stroke-width", "stroke-linejoin",
                          "stroke-linecap", "stroke-opacity", "stroke-dasharray", "stroke-dashoffset",
                          "stroke-miterlimit", "opacity", "clip-rule", "font-family", "font-size", "font-weight",
                          "font-style", "text-anchor", "dominant-baseline"})


def _local_name(name: str) -> str:
    return name.rsplit("}", 1)[-1]


def inline_svg(svg: bytes, prefix: str) -> Markup:
    """A chart's SVG (charts.py: inline-safe, styles as presentation attributes) as the page shows it: its ids
    prefixed, since three charts share a page, and nothing but drawing elements and attributes, written out by
    the XML serializer. A style attribute is dropped: the console's CSP would have browsers ignore it anyway."""
    root = ET.fromstring(svg)  # our own matplotlib output: no DTD, text escaped
    for element in list(root.iter()):
        for child in list(element):
            if _local_name(child.tag) not in ELEMENTS:
                element.remove(child)
        attrs = {_local_name(k): v for k, v in element.attrib.items() if _local_name(k) in ATTRIBUTES | PRESENTATION}
        if "id" in attrs:
            attrs["id"] = f"{prefix}-{attrs['id']}"
        if attrs.get("href", "").startswith("#"):
            attrs["href"] = f"#{prefix}-{attrs['href'][1:]}"
        if attrs.get("clip-path", "").startswith("url(#"):
            attrs["clip-path"] = f"url(#{prefix}-{attrs['clip-path'][5:]}"
        element.tag = _local_name(element.tag)  # in an HTML page <svg> is SVG by itself: no namespaces
        element.attrib.clear()
        element.attrib.update(attrs)
    root.set("class", "chart")
    return Markup(ET.tostring(root, encoding="unicode"))
