"""The web console's words, read from the one catalogue (core/words/): one nested dict per language, same keys.

Templates say `t.queue`, `t.states[r.state]`, `t.rec.stages[2]`; every text comes from core/words/<lang>.py.
"""

from __future__ import annotations

from typing import Any

from edudesk.core.words import Words, words


def _build(w: Words) -> dict[str, Any]:
    t: dict[str, Any] = dict(w.tree("web"))
    t["login_ways"] = [text for _, text in sorted(t["login_ways"].items())]
    t.update(states=w.group("state"), populations=w.group("population"), kinds=w.group("kind"),
             roles_names=w.group("role"), actions=w.group("event"), details=w.group("detail"),
             rec=w.tree("rec"), links=w.tree("links"))
    return t


VI: dict[str, Any] = _build(words("vi"))
EN: dict[str, Any] = _build(words("en"))


def labels(language: str) -> dict[str, Any]:
    """The labels for [general].language ("en", or Vietnamese for anything else)."""
    return EN if language == "en" else VI
