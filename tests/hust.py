"""HUST (Trường Đại học Bách khoa Hà Nội), the school of seed 000, given to tests explicitly.

Most tests speak HUST's mails and addresses (office-bknic@hust.edu.vn, a.xyz@sis.hust.edu.vn); the built-in
defaults are a fictional example school, so a test that means HUST says so: the shared settings fixtures
(`tests/conftest.py`) start from these sections, and a test that builds settings or writes a config file
itself takes them from here. The values are read from the shipped example, `examples/config.hust.toml`.
"""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path
from typing import Any

from edudesk.core.config import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
HUST_CONFIG = ROOT / "examples" / "config.hust.toml"
HUST_TOML = HUST_CONFIG.read_text(encoding="utf-8")  # the sections that differ from the built-in defaults
HUST: dict[str, dict[str, Any]] = tomllib.loads(HUST_TOML)  # section -> {key: value}

OFFICE = HUST["institution"]["office_address"]  # office-bknic@hust.edu.vn
STAFF_DOMAIN = HUST["naming"]["staff_domain"]  # hust.edu.vn
STUDENT_DOMAIN = HUST["naming"]["student_domain"]  # sis.hust.edu.vn


def hust_overrides(**overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """HUST's sections with per-section overrides on top (for `load_settings(overrides=...)`)."""
    merged = copy.deepcopy(HUST)
    for section, values in overrides.items():
        merged.setdefault(section, {}).update(values)
    return merged


def hust_settings(**overrides: dict[str, Any]) -> Settings:
    """The built-in defaults with HUST's institution, naming and outgoing mail; more overrides per section."""
    return load_settings(None, overrides=hust_overrides(**overrides), environ={})


_HEADER = re.compile(r"^\[([A-Za-z_.]+)\][ \t]*(#.*)?$", re.M)


def with_hust(config: str) -> str:
    """A config file's text with HUST's sections in it: keys the text sets itself win, HUST's fill the rest."""
    text = config
    for section, values in HUST.items():
        header = next((m for m in _HEADER.finditer(text) if m.group(1) == section), None)
        if header is None:
            lines = "".join(f"{key} = {_toml(value)}\n" for key, value in values.items())
            text = text.rstrip("\n") + f"\n\n[{section}]\n{lines}"
            continue
        following = _HEADER.search(text, header.end())
        body = text[header.end():following.start() if following else len(text)]
        own = set(re.findall(r"^\s*([A-Za-z_]+)\s*=", body, re.M))
        lines = "".join(f"{key} = {_toml(value)}\n" for key, value in values.items() if key not in own)
        text = text[:header.end()] + "\n" + lines + text[header.end():].lstrip("\n")
    return text


def _toml(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value).lower() if isinstance(value, bool) else repr(value)


__all__ = ["HUST", "HUST_CONFIG", "HUST_TOML", "OFFICE", "STAFF_DOMAIN", "STUDENT_DOMAIN", "hust_overrides",
           "hust_settings", "with_hust"]
