"""Progress of long command-line work (registry import, records import/demo/export): a tqdm bar on standard
error for a person watching a terminal, or everywhere with `--progress`; silent in pipes, cron and tests, so
what scripts read on standard output never changes. Core code only calls an `OnProgress(done, total)`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from edudesk.core.ports import OnProgress
from edudesk.core.words import t

# No rate: "12.3học bạ/s" reads badly, and the time left says more to the person waiting.
BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} {unit} [{elapsed}<{remaining}]"


def add_progress_flag(parser: argparse.ArgumentParser) -> None:
    """`--progress`: draw the bar on standard error even when it is not a terminal (a log, a CI job)."""
    parser.add_argument("--progress", action="store_true",
                        help="show progress on standard error even when it is not a terminal")


def _quiet(done: int, total: int) -> None:
    """Nobody is watching: nothing to draw."""


class ProgressBar:
    """An `OnProgress` that draws one tqdm bar, opened on the first call (when the total is known)."""

    def __init__(self, label: str, unit: str, stream: TextIO) -> None:
        self.label, self.unit, self.stream = label, unit, stream
        self._bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        """Move the bar to `done` of `total`."""
        from tqdm import tqdm  # only a command that draws a bar pays for the import

        if self._bar is None:
            self._bar = tqdm(total=total, desc=self.label, unit=self.unit, file=self.stream, bar_format=BAR_FORMAT,
                             dynamic_ncols=True, leave=True)
        elif total != self._bar.total:
            self._bar.total = total
        self._bar.update(done - self._bar.n)  # tqdm redraws at most ten times a second

    def close(self) -> None:
        """Draw the last state and end the line."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


@contextmanager
def progress(what: str, lang: str | None, *, forced: bool = False,
             stream: TextIO | None = None) -> Iterator[OnProgress]:
    """The `on_progress` for one piece of work named `cli.progress.<what>` in the catalogue (and its unit
    `cli.progress.<what>.unit`): a bar when forced or when the stream is a terminal, else a no-op."""
    out = stream or sys.stderr
    if not (forced or out.isatty()):
        yield _quiet
        return
    bar = ProgressBar(t(f"cli.progress.{what}", lang), t(f"cli.progress.{what}.unit", lang), out)
    try:
        yield bar
    finally:
        bar.close()
