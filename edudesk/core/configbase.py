"""How config is read: the base of the section models, the layers (defaults < config.toml <
`EDUDESK_<SECTION>__<KEY>` variables, through pydantic-settings), the secrets `*_env` keys name, and the one
line that names a wrong key.

Nothing here reads `os.environ`: the environment is a mapping handed in by the composition root.
"""

from __future__ import annotations

import json
import logging
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import EnvSettingsSource
from pydantic_settings.sources.utils import parse_env_vars

from edudesk.core.errors import ConfigError

ENV_PREFIX = "EDUDESK_"
ENV_DELIMITER = "__"

Port = Annotated[int, Field(ge=0, le=65535)]  # 0: any free port (tests)
NonNegInt = Annotated[int, Field(ge=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
M = TypeVar("M", bound=BaseModel)


class Section(BaseModel):
    """One table of config.toml: frozen, typed, and an unknown key is an error (pydantic `ValidationError`;
    `load_settings` turns it into one `ConfigError` line)."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=False)


def read_config(model: type[M], path: str | Path | None, overrides: Mapping[str, Any] | None,
                environ: Mapping[str, str]) -> tuple[M, dict[str, str]]:
    """The model from defaults < the TOML file < `EDUDESK_<SECTION>__<KEY>` of `environ` < `overrides`, and the
    secrets its `*_env` keys name, read from `environ`; a wrong value is a `ConfigError` of one line.
    `base_dir` (the root's key for relative paths) is the file's folder, or the working directory."""
    data: dict[str, Any] = {}
    base_dir = Path.cwd()
    label = "config"
    if path is not None:
        p = Path(path)
        label = p.name
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"Không tìm thấy tệp cấu hình {p}", code="config_missing") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"Tệp cấu hình {p} sai cú pháp: {exc}", code="config_syntax") from None
        base_dir = p.resolve().parent
        _drop_retired(data, label)
    from_env = environment_layer(model, environ)
    data = _merged(_merged(data, from_env), dict(overrides or {}))
    data.setdefault("base_dir", str(base_dir))
    try:
        built = model.model_validate(data)
    except ValidationError as exc:
        def where(loc: tuple[str | int, ...]) -> str:
            return f"environment {env_key(loc)}" if has_path(from_env, loc) else file_key(label, loc)

        raise ConfigError(error_line(exc, where), code="config_value") from None
    return built, named_secrets(built, environ)


# Keys an older config.toml may still have that edudesk no longer reads: dropped with a warning, so an
# upgrade starts instead of refusing the file; the warning says what to do.
RETIRED: dict[tuple[str, str], str] = {
    ("sla", "notify_hours"): "the result mail goes as soon as the directory change is done; delete the line",
}


def _drop_retired(data: dict[str, Any], label: str) -> None:
    for (section, key), why in RETIRED.items():
        table = data.get(section)
        if isinstance(table, dict) and key in table:
            del table[key]
            logging.getLogger("edudesk").warning("%s [%s] %s is no longer used: %s", label, section, key, why)


def _merged(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """`top` over `base`, table by table."""
    out = dict(base)
    for key, value in top.items():
        below = out.get(key)
        out[key] = _merged(below, value) if isinstance(below, dict) and isinstance(value, Mapping) else value
    return out


def named_secrets(model: BaseModel, environ: Mapping[str, str]) -> dict[str, str]:
    """The value of every variable a `*_env` key names (set ones only)."""
    found: dict[str, str] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            found.update(named_secrets(value, environ))
        elif name.endswith("_env") and isinstance(value, str) and value in environ:
            found[value] = environ[value]
    return found


def error_line(exc: ValidationError, name: typing.Callable[[tuple[str | int, ...]], str]) -> str:
    """One line for the first error: where (by `name(loc)`), what is wrong, and the value given."""
    errors = exc.errors()
    first = errors[0]
    loc = tuple(first["loc"])
    if first["type"] == "extra_forbidden":
        what = "unknown key" if len(loc) > 1 else "unknown section"
    else:
        what = first["msg"]
        if first["type"] != "missing":
            what += f" (got {_shown(first['input'])})"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return " ".join(f"{name(loc)}: {what}{more}".split())


def file_key(label: str, loc: tuple[str | int, ...]) -> str:
    """`config.toml [provisioning.google] max_retries` for a key of a file."""
    keys = [str(k) for k in loc if isinstance(k, str)]
    index = "".join(f"[{k}]" for k in loc[len(keys):] if isinstance(k, int))
    if len(keys) == 1:
        return f"{label} [{keys[0]}]{index}"
    return f"{label} [{'.'.join(keys[:-1])}] {keys[-1]}{index}"


def env_key(loc: tuple[str | int, ...]) -> str:
    """`EDUDESK_PROVISIONING__GOOGLE__MAX_RETRIES` for a key set in the environment."""
    return ENV_PREFIX + ENV_DELIMITER.join(str(k).upper() for k in loc if isinstance(k, str))


def has_path(data: Mapping[str, Any], loc: tuple[str | int, ...]) -> bool:
    """Whether nested `data` holds a value at the string keys of `loc`."""
    node: Any = data
    for key in (k for k in loc if isinstance(k, str)):
        if not isinstance(node, Mapping) or key not in node:
            return False
        node = node[key]
    return True


class _MappingEnvironment(EnvSettingsSource):
    """pydantic-settings' environment source reading a given mapping instead of the process environment."""

    def __init__(self, model: type[BaseModel], environ: Mapping[str, str]) -> None:
        self._given = environ
        super().__init__(model, case_sensitive=False, env_prefix=ENV_PREFIX,  # type: ignore[arg-type]
                         env_nested_delimiter=ENV_DELIMITER, env_ignore_empty=False)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._given, False, False, None)


def environment_layer(model: type[BaseModel], environ: Mapping[str, str]) -> dict[str, Any]:
    """The nested values `EDUDESK_<SECTION>__<KEY>` variables set (lists and tables as JSON)."""
    for name, value in environ.items():
        _check_variable(model, name, value)
    return dict(_MappingEnvironment(model, environ)())


def _check_variable(model: type[BaseModel], name: str, value: str) -> None:
    """A misspelt section is an error, not a silently ignored variable; a list or table key needs JSON (say
    so naming the variable: pydantic-settings names only the section)."""
    if not name.upper().startswith(ENV_PREFIX) or ENV_DELIMITER not in name:
        return
    tp: Any = model
    for depth, key in enumerate(name[len(ENV_PREFIX):].lower().split(ENV_DELIMITER)):
        fields = tp.model_fields if isinstance(tp, type) and issubclass(tp, BaseModel) else {}
        if key not in fields:
            if depth == 0:
                raise ConfigError(f"environment {name.upper()}: unknown section", code="config_value")
            return  # an unknown key is reported by validation, naming the variable
        tp = fields[key].annotation
    complex_ = typing.get_origin(tp) in (tuple, list, dict) or (isinstance(tp, type) and issubclass(tp, BaseModel))
    if complex_:
        try:
            json.loads(value)
        except ValueError:
            raise ConfigError(f"environment {name.upper()}: Input should be JSON, e.g. [\"a.edu.vn\"] "
                              f"(got {_shown(value)})", code="config_value") from None


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, dict) else "a table"
    return text if len(text) <= 60 else text[:57] + "..."
