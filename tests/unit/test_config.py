"""config.toml is the documentation of every setting: it lists each one, with the built-in default."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from core.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_config_toml_lists_every_setting_with_its_default() -> None:
    data = tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))
    defaults = Settings()
    for f in dataclasses.fields(Settings):
        if f.name == "base_dir":
            continue
        assert f.name in data, f"[{f.name}] missing from config.toml"
        _check_section(getattr(defaults, f.name), data[f.name], f.name)


def _check_section(section: object, data: dict[str, object], where: str) -> None:
    for g in dataclasses.fields(section):  # type: ignore[arg-type]
        assert g.name in data, f"[{where}].{g.name} missing from config.toml"
        value = data[g.name]
        expected = getattr(section, g.name)
        if dataclasses.is_dataclass(expected):
            assert isinstance(value, dict), f"[{where}.{g.name}] must be a table"
            _check_section(expected, value, f"{where}.{g.name}")
            continue
        if isinstance(expected, tuple):
            value = tuple(value)  # type: ignore[arg-type]
        assert value == expected, f"[{where}].{g.name}: config.toml says {value!r}, default is {expected!r}"


def test_every_line_of_config_toml_has_a_comment() -> None:
    for line in (ROOT / "config.toml").read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            assert "#" in line.split("=", 1)[1], f"no comment: {line}"
