"""One catalogue of the words people read: one flat keyed module per language (vi.py, en.py).

`t("state.received", "vi")` gives a text; an unknown language falls back to Vietnamese, an unknown key raises
KeyError (so a test catches a misspelt key instead of a person reading it). `label("state", value, lang)` is
for values read from data (a state, a kind, an event name): a value the catalogue does not know is shown as
it is rather than failing a whole page.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from edudesk.core.words import en, vi

LANGUAGES = ("vi", "en")
CATALOGUES: Mapping[str, Mapping[str, str]] = {"vi": vi.WORDS, "en": en.WORDS}


def language(lang: str | None) -> str:
    """The catalogue language for a setting: "en" or Vietnamese (anything else falls back to vi)."""
    return lang if lang is not None and lang in CATALOGUES else "vi"


@dataclass(frozen=True)
class Words:
    """The words of one language."""

    lang: str
    texts: Mapping[str, str]

    def __call__(self, key: str, **fields: Any) -> str:
        """The text of `key` with its placeholders filled; KeyError for a key the catalogue lacks."""
        text = self.texts[key]
        return text.format(**fields) if fields else text

    def has(self, key: str) -> bool:
        """Whether the catalogue has `key`."""
        return key in self.texts

    def label(self, prefix: str, value: object, default: str | None = None) -> str:
        """The label of a data value (`prefix.value`); the value itself (or `default`) when none is known."""
        raw = str(getattr(value, "value", value))
        return self.texts.get(f"{prefix}.{raw}", raw if default is None else default)

    def group(self, prefix: str) -> dict[str, str]:
        """The direct children of `prefix` as {suffix: text} ("state" -> {"received": ...})."""
        start = prefix + "."
        return {k[len(start):]: v for k, v in self.texts.items() if k.startswith(start) and "." not in k[len(start):]}

    def tree(self, prefix: str) -> dict[Any, Any]:
        """Everything under `prefix` as nested dicts split at dots (digit parts become int keys)."""
        start, out = prefix + ".", dict[Any, Any]()
        for key, text in self.texts.items():
            if not key.startswith(start):
                continue
            parts: list[Any] = [int(p) if p.isdecimal() else p for p in key[len(start):].split(".")]
            node = out
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = text
        return out


@functools.cache
def words(lang: str | None = "vi") -> Words:
    """The words of a language ("en", or Vietnamese for anything else)."""
    code = language(lang)
    return Words(code, CATALOGUES[code])


def t(key: str, lang: str | None = "vi", **fields: Any) -> str:
    """One text of the catalogue, placeholders filled."""
    return words(lang)(key, **fields)


def event_label(action: str, lang: str | None, stored: str = "") -> str:
    """An audit event's name for people: the catalogue's, else the label stored with it, else the raw name."""
    w = words(lang)
    return w(f"event.{action}") if w.has(f"event.{action}") else (stored or action)


# Detail values that name something the catalogue has a label for, by the detail key that holds them.
_VALUE_PREFIX = {"from": "state", "to": "state", "state": "state", "owner": "role",
                 "kind": "kind", "population": "population", "template": "mail.template", "reason": "error",
                 "surface": "channel", "channel": "channel", "action": "action", "roles": "role"}


def detail_pairs(pairs: Iterable[tuple[str, str]], lang: str | None, timezone: str = "") -> list[tuple[str, str]]:
    """An audit event's (key, text) detail pairs in words: keys labelled, states/roles/kinds named, times local."""
    from edudesk.core.text import local_time  # core.text is imported by the catalogue's users, not the other way

    w, out = words(lang), []
    for key, text in pairs:
        prefix = _VALUE_PREFIX.get(key)
        if prefix and w.has(f"{prefix}.{text}"):
            text = w(f"{prefix}.{text}")
        elif key == "previous" and w.has(f"event.mail_{text}"):  # a mail's earlier outcome
            text = w(f"event.mail_{text}")
        elif key == "action" and w.has(f"card.{text}"):
            text = w(f"card.{text}")
        elif timezone and key in ("deadline", "at", "when"):
            try:
                text = local_time(datetime.fromisoformat(text), timezone)
            except ValueError:
                pass
        out.append((w.label("detail", key), text))
    return out
