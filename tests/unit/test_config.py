"""config.toml is the documentation of every setting: it lists each one, with the built-in default."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel

from edudesk.core.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_config_toml_lists_every_setting_with_its_default() -> None:
    data = tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))
    defaults = Settings()
    for name in Settings.model_fields:
        if name == "base_dir":
            continue
        assert name in data, f"[{name}] missing from config.toml"
        _check_section(getattr(defaults, name), data[name], name)


def _check_section(section: BaseModel, data: dict[str, object], where: str) -> None:
    for name in type(section).model_fields:
        assert name in data, f"[{where}].{name} missing from config.toml"
        value = data[name]
        expected = getattr(section, name)
        if isinstance(expected, BaseModel):
            assert isinstance(value, dict), f"[{where}.{name}] must be a table"
            _check_section(expected, value, f"{where}.{name}")
            continue
        if isinstance(expected, tuple):
            value = tuple(value)  # type: ignore[arg-type]
        assert value == expected, f"[{where}].{name}: config.toml says {value!r}, default is {expected!r}"


def test_every_line_of_config_toml_has_a_comment() -> None:
    for line in (ROOT / "config.toml").read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            assert "#" in line.split("=", 1)[1], f"no comment: {line}"
