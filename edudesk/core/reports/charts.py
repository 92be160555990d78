"""Charts drawn with matplotlib: SVG for the web console, PNG for PDFs; the BM03 report's three charts.

Rendering is CPU work (tens of milliseconds a chart): async callers run these functions with
`await asyncio.to_thread(bar_chart, ...)`. They use matplotlib's object API (`matplotlib.figure.Figure` on the Agg
canvas, never pyplot and its global figure state), so several threads may draw at once.

matplotlib is imported on first use, not when this module is, so `edudesk --help` does not pay for it.
"""

from __future__ import annotations

import functools
import io
import math
import re
import threading
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from xml.sax.saxutils import quoteattr

from edudesk.core.reports.figures import Bm03Figures, GroupRow
from edudesk.core.words import Words, language, words

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FORMATS = ("svg", "png")
PNG_DPI = 150
# Colours told apart by people with the common colour-vision deficiencies (Okabe-Ito), in series order.
COLOURS = ("#0072B2", "#009E73", "#D55E00", "#E69F00", "#56B4E9", "#CC79A7", "#F0E442", "#000000")
# The kinds of request a BM03 counts, in the order its tables list them.
REQUEST_KINDS = ("new_account", "password_reset", "bulk_new_accounts", "delete_accounts", "question")
_SVG_ROOT = re.compile(r"<svg\b[^>]*>")
_LOCK = threading.Lock()


@functools.cache
def _matplotlib() -> Any:
    """matplotlib, imported once with its config dir settled and the settings every chart shares."""
    with _LOCK:
        # its config/cache folder was settled by the composition root (edudesk/app.py `matplotlib_home`)
        import matplotlib
        from matplotlib import rcsetup

        matplotlib.use("Agg", force=False)
        matplotlib.rcParams.update({
            "svg.fonttype": "none",  # SVG text stays text: the browser draws Vietnamese with its own fonts
            "svg.hashsalt": "edudesk",  # the same chart gives the same ids and bytes
            "text.parse_math": False,  # a "$" in a unit's name is a character, not mathtext
            "font.family": "sans-serif",
            "font.sans-serif": ["DejaVu Sans"],  # ships with matplotlib and has every Vietnamese letter
            "axes.spines.top": False, "axes.spines.right": False,
            "axes.prop_cycle": rcsetup.cycler(color=list(COLOURS)),
        })
        return matplotlib


def bundled_font(filename: str) -> Path:
    """A font file that ships with matplotlib (e.g. "DejaVuSans-Bold.ttf"), for writers that need the same face."""
    return Path(_matplotlib().get_data_path(), "fonts", "ttf", filename)


def _figure(width: float, height: float) -> Figure:
    _matplotlib()
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(figure: Figure, fmt: str, title: str) -> bytes:
    if fmt not in FORMATS:
        raise ValueError(f"chart format {fmt!r}: one of {FORMATS}")
    buffer = io.BytesIO()
    if fmt == "png":
        figure.savefig(buffer, format="png", dpi=PNG_DPI, metadata={"Software": None})
        return buffer.getvalue()
    figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    return _inline_svg(buffer.getvalue().decode("utf-8"), title).encode("utf-8")


def _inline_svg(svg: str, title: str) -> str:
    """The SVG as an element to put in a page: no prolog, DOCTYPE, metadata or page-wide <style> (an inline
    SVG's style sheet would apply to the whole page); a viewBox and no fixed size, so it scales to the screen;
    only the ids that the chart itself refers to (clip paths, markers), so several charts share a page."""
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    svg = re.sub(r"<style\b[^>]*>.*?</style>\s*", "", svg, flags=re.S)
    used = set(re.findall(r'(?:url\(#|href="#)([^)"]+)', svg))
    svg = re.sub(r'\sid="([^"]*)"', lambda m: m.group(0) if m.group(1) in used else "", svg)
    root = _SVG_ROOT.search(svg)
    assert root is not None  # matplotlib always writes one
    tag = re.sub(r'\s(?:width|height)="[^"]*"', "", root.group(0))
    tag = tag.replace("<svg", f'<svg role="img" aria-label={quoteattr(title)} '
                              'stroke-linejoin="round" stroke-linecap="butt"', 1)
    return _presentation_attributes(svg[:root.start()] + tag + svg[root.end():])


_STYLE_ATTRIBUTE = re.compile(r'\sstyle="([^"]*)"')


def _presentation_attributes(svg: str) -> str:
    """matplotlib's `style="fill: #fff; stroke: …"` as presentation attributes (`fill="#fff"`): a console whose
    CSP allows no inline styles (`style-src` with a nonce) makes browsers ignore style attributes, which leaves a
    black chart; presentation attributes are not styles and always apply."""
    def attributes(match: re.Match[str]) -> str:
        pairs = (part.split(":", 1) for part in match.group(1).split(";") if ":" in part)
        # the values come out of a double-quoted attribute, escaped already
        return "".join(f' {name.strip()}="{value.strip()}"' for name, value in pairs)
    return _STYLE_ATTRIBUTE.sub(attributes, svg)


def bar_chart(categories: Sequence[str], series: Mapping[str, Sequence[float]], *, title: str, ylabel: str = "",
              fmt: str = "svg", stacked: bool = False, horizontal: bool = False,
              scale_max: float | None = None) -> bytes:
    """A bar chart, one bar per (category, series), grouped or stacked, as SVG (inline-safe) or PNG bytes;
    `scale_max` fixes the value axis (100 for percentages) instead of fitting it to the tallest bar."""
    n, names = len(categories), list(series)
    bar_rows = max(n, 1) * (1 if stacked else max(len(names), 1))
    _matplotlib()  # before any matplotlib import: it settles the config dir
    from matplotlib.ticker import MaxNLocator

    figure = _figure(7.0, max(2.6, 1.2 + 0.28 * bar_rows) if horizontal else 3.6)
    axes = figure.add_subplot()
    axes.set_title(title)
    slot = 0.8 if stacked or not names else 0.8 / len(names)
    base = [0.0] * n
    for i, name in enumerate(names):
        values = [float(v) for v in series[name]]
        if len(values) != n:
            raise ValueError(f"series {name!r} has {len(values)} values for {n} categories")
        at = list(range(n)) if stacked else [c - 0.4 + slot * (i + 0.5) for c in range(n)]
        draw = axes.barh if horizontal else axes.bar
        bars = draw(at, values, slot, base, label=name) if stacked else draw(at, values, slot, label=name)
        if not stacked:
            axes.bar_label(bars, labels=[_number(v) if v else "" for v in values], fontsize=7, padding=1)
        base = [b + v for b, v in zip(base, values, strict=True)] if stacked else base
    if horizontal:
        axes.set_yticks(range(n), labels=list(categories))
        axes.invert_yaxis()  # the first category on top, as read
        axes.set_xlabel(ylabel)
    else:
        axes.set_xticks(range(n), labels=list(categories), rotation=20 if n > 4 else 0,
                        ha="right" if n > 4 else "center")
        axes.set_ylabel(ylabel)
    (axes.xaxis if horizontal else axes.yaxis).set_major_locator(MaxNLocator(integer=True))
    limits = axes.set_xlim if horizontal else axes.set_ylim
    # From zero, and at least to one: an empty period shows an empty axis, not ticks at ±0.045.
    limits(0, scale_max if scale_max is not None else max((axes.get_xlim if horizontal else axes.get_ylim)()[1], 1))
    if len(names) > 1:
        axes.legend(fontsize=8, frameon=False)
    return _save(figure, fmt, title)


def line_chart(x: Sequence[date], series: Mapping[str, Sequence[float]], *, title: str, ylabel: str = "",
               fmt: str = "svg") -> bytes:
    """A line chart over days (dd/mm on the axis), one line per series, as SVG (inline-safe) or PNG bytes."""
    _matplotlib()  # before any matplotlib import: it settles the config dir
    from matplotlib.dates import DateFormatter, DayLocator
    from matplotlib.ticker import MaxNLocator

    figure = _figure(7.0, 3.2)
    axes = figure.add_subplot()
    axes.set_title(title)
    for name, values in series.items():
        if len(values) != len(x):
            raise ValueError(f"series {name!r} has {len(values)} values for {len(x)} days")
        axes.plot(cast(Any, list(x)), [float(v) for v in values], marker="o" if len(x) <= 31 else "", markersize=3,
                  label=name)
    axes.xaxis.set_major_locator(DayLocator(interval=max(1, math.ceil(len(x) / 10))))  # whole days only
    axes.xaxis.set_major_formatter(DateFormatter("%d/%m"))
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    top = max(axes.get_ylim()[1], 1)
    axes.set_ylim(-0.03 * top, top)  # a little below zero so points on zero are whole
    axes.set_ylabel(ylabel)
    if len(series) > 1:
        axes.legend(fontsize=8, frameon=False)
    return _save(figure, fmt, title)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def kind_totals(fig: Bm03Figures) -> list[tuple[str, GroupRow]]:
    """The groups added up per kind: every kind of request the office handles (zeros too, so reports compare
    month to month), then any other kind found, in that order."""
    kinds = list(REQUEST_KINDS) + sorted({g.kind for g in fig.groups} - set(REQUEST_KINDS))
    counts = ("received", "approved", "rejected", "done", "open")
    return [(k, GroupRow(kind=k, population="", unit="", **{
        c: sum(getattr(g, c) for g in fig.groups if g.kind == k) for c in counts})) for k in kinds]


def bm03_charts(fig: Bm03Figures, lang: str, fmt: str) -> dict[str, bytes]:
    """The BM03 report's charts: "by_kind" (received/done/rejected/open per kind), "steps" (share finished
    within the limit per step, in %) and "daily" (received and finished per day)."""
    w = report_words(lang)
    totals = kind_totals(fig)
    columns = ("received", "done", "rejected", "open")
    by_kind = bar_chart([w.label("kind", k) for k, _ in totals],
                        {w(f"report.{c}"): [getattr(t, c) for _, t in totals] for c in columns},
                        title=w("report.chart_by_kind"), ylabel=w("report.requests"), fmt=fmt)
    steps = fig.steps
    shares = bar_chart([w(f"report.step.{s.step}") for s in steps],
                       {w("report.within_limit"): [round(100 * (s.share_within or 0.0), 1) for s in steps]},
                       title=w("report.chart_steps"), ylabel="%", fmt=fmt, horizontal=True, scale_max=100)
    daily = line_chart([d.day for d in fig.days],
                       {w("report.received"): [d.received for d in fig.days],
                        w("report.finished"): [d.finished for d in fig.days]},
                       title=w("report.chart_daily"), ylabel=w("report.requests"), fmt=fmt)
    return {"by_kind": by_kind, "steps": shares, "daily": daily}


@functools.cache
def report_words(lang: str | None) -> Words:
    """The catalogue's words of `lang` (the report's texts are `report.*` and `cli.reports.*` there)."""
    return words(language(lang))
