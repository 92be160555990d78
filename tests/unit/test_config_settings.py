"""Settings are read once: config.toml under `EDUDESK_<SECTION>__<KEY>` variables, secrets resolved at load,
a wrong value is one line naming the key, and nothing below main.py reads the environment."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from edudesk.core.config import Settings, load_settings
from edudesk.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def leaves(model: type[BaseModel], path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every key of the settings tree with its annotation (sections and sub-tables walked into)."""
    hints = typing.get_type_hints(model, include_extras=True)
    for name in model.model_fields:
        tp = hints[name]
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            yield from leaves(tp, (*path, name))
        elif path:  # base_dir is not a key of the file
            yield (*path, name), tp


def other_value(path: tuple[str, ...], tp: Any, default: Any) -> tuple[str, Any]:
    """A valid value other than the default: (as the variable's text, as read back)."""
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) is typing.Literal:
        choice = next(c for c in typing.get_args(tp) if c != default)
        return choice, choice
    if typing.get_origin(tp) is tuple:
        return '["x.edu.vn", "y"]', ("x.edu.vn", "y")
    if tp is bool:
        return ("false", False) if default else ("true", True)
    if tp is int:
        return str(default + 1), default + 1
    if tp is float:
        return str(default + 0.5), default + 0.5
    if path[-1] == "backlog_since":
        return "2026-09-01", "2026-09-01"
    return f"{default}-changed", f"{default}-changed"


def value_at(settings: Settings, path: tuple[str, ...]) -> Any:
    node: Any = settings
    for key in path:
        node = getattr(node, key)
    return node


KEYS = list(leaves(Settings))


def test_the_settings_tree_has_all_its_sections_and_nested_tables() -> None:
    paths = {p for p, _ in KEYS}
    assert len(paths) > 200
    assert {("smtpd", "port"), ("institution", "domains"), ("provisioning", "google", "max_retries"),
            ("records", "issuer", "kind"), ("provisioning", "populations", "staff")} <= paths


@pytest.mark.parametrize(("path", "tp"), KEYS, ids=["__".join(p) for p, _ in KEYS])
def test_every_key_can_be_set_as_an_edudesk_section_key_variable(path: tuple[str, ...], tp: Any) -> None:
    default = value_at(Settings(), path)
    text, expected = other_value(path, tp, default)
    name = "EDUDESK_" + "__".join(path).upper()
    settings = load_settings(ROOT / "config.toml", environ={name: text})
    assert value_at(settings, path) == expected != default


def test_examples_of_the_readme(tmp_path: Path) -> None:
    settings = load_settings(None, environ={"EDUDESK_SMTPD__PORT": "2526",
                                            "EDUDESK_INSTITUTION__DOMAINS": '["a.edu.vn"]',
                                            "EDUDESK_PROVISIONING__BACKEND": "ldap"})
    assert settings.smtpd.port == 2526
    assert settings.institution.domains == ("a.edu.vn",)  # a tuple still
    assert settings.provisioning.backend_for("staff") == "ldap"


def test_environment_wins_over_the_file_which_wins_over_the_defaults(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[smtpd]\nport = 2600\nhost = "0.0.0.0"\n[web]\nport = 9000\n', encoding="utf-8")
    settings = load_settings(config, environ={"EDUDESK_SMTPD__PORT": "2700", "EDUDESK_IMAP__PORT": "1993"})
    assert settings.smtpd.port == 2700  # environment over file
    assert settings.smtpd.host == "0.0.0.0"  # file over default, the section's other keys kept
    assert settings.web.port == 9000
    assert settings.imap.port == 1993  # environment over default
    assert settings.jobs.concurrency == 4  # default
    assert load_settings(config).smtpd.port == 2600  # no environment given: the file alone


def test_variables_outside_the_edudesk_section_key_form_are_ignored() -> None:
    settings = load_settings(None, environ={"EDUDESK_SMTPD_PORT": "1", "SMTPD__PORT": "1", "EDUDESK_TEST_X": "y"})
    assert settings.smtpd.port == 2525


def bad_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("text", "line"), [
    ('[smtpd]\nport = "abc"\n', 'config.toml [smtpd] port: Input should be a valid integer'),
    ("[smtpd]\nport = -1\n", "config.toml [smtpd] port: Input should be greater than or equal to 0 (got -1)"),
    ("[smtpd]\nportt = 25\n", "config.toml [smtpd] portt: unknown key"),
    ("[smptd]\nport = 25\n", "config.toml [smptd]: unknown section"),
    ('[outgoing]\ntransport = "x"\n',
     "config.toml [outgoing] transport: Input should be 'maildir' or 'smtp' (got \"x\")"),
    ("[provisioning.google]\nmax_retries = -2\n", "config.toml [provisioning.google] max_retries: Input should be "
                                                  "greater than or equal to 0"),
    ('[institution]\ndomains = "a.edu.vn"\n', "config.toml [institution] domains: Input should be a valid tuple"),
    ('[imap]\nbacklog_since = "hôm qua"\n', "config.toml [imap] backlog_since: Value error, should be new, all"),
    ('[provisioning]\nbackend = "ldapp"\n', "config.toml [provisioning] backend: Input should be 'local'"),
])
def test_a_wrong_value_in_the_file_is_one_line_naming_the_key(tmp_path: Path, text: str, line: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(bad_file(tmp_path, text))
    assert caught.value.message.startswith(line), caught.value.message
    assert "\n" not in caught.value.message


@pytest.mark.parametrize(("environ", "line"), [
    ({"EDUDESK_SMTPD__PORT": "abc"}, 'environment EDUDESK_SMTPD__PORT: Input should be a valid integer'),
    ({"EDUDESK_SMTPD__PORTT": "25"}, "environment EDUDESK_SMTPD__PORTT: unknown key"),
    ({"EDUDESK_SMTP__PORT": "25"}, "environment EDUDESK_SMTP__PORT: unknown section"),
    ({"EDUDESK_INSTITUTION__DOMAINS": "a.edu.vn"}, "environment EDUDESK_INSTITUTION__DOMAINS: Input should be JSON"),
    ({"EDUDESK_TELEGRAM__MODE": "hook"}, "environment EDUDESK_TELEGRAM__MODE: Input should be 'polling' or "
                                         "'webhook' (got \"hook\")"),
])
def test_a_wrong_value_in_the_environment_is_one_line_naming_the_variable(environ: dict[str, str],
                                                                          line: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, environ=environ)
    assert caught.value.message.startswith(line), caught.value.message
    assert "\n" not in caught.value.message


def test_the_file_is_named_when_the_environment_sets_a_good_value_beside_a_bad_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^config.toml \[smtpd\] max_backlog:"):
        load_settings(bad_file(tmp_path, '[smtpd]\nmax_backlog = "many"\n'), environ={"EDUDESK_SMTPD__PORT": "26"})


def edudesk(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed `edudesk` command, as an administrator runs it."""
    command = ROOT / ".venv" / "bin" / "edudesk"
    argv = [str(command)] if command.exists() else [sys.executable, "-m", "edudesk"]
    return subprocess.run([*argv, *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_the_command_exits_2_with_the_one_line_on_a_bad_config(tmp_path: Path) -> None:
    config = bad_file(tmp_path, f'[general]\ndata_dir = "{tmp_path}/data"\n[smtpd]\nport = "abc"\n')
    done = edudesk("--config", str(config), "db", "migrate")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        'edudesk: config.toml [smtpd] port: Input should be a valid integer, unable to parse string as an integer '
        '(got "abc")']
    assert not (tmp_path / "data").exists()  # stopped before touching anything


def test_the_command_exits_2_naming_a_bad_variable(tmp_path: Path) -> None:
    config = bad_file(tmp_path, f'[general]\ndata_dir = "{tmp_path}/data"\n')
    done = edudesk("--config", str(config), "staff", "list", env={"EDUDESK_OUTGOING__TRANSPORT": "sendmail"})
    assert done.returncode == 2
    assert done.stderr.strip() == ("edudesk: environment EDUDESK_OUTGOING__TRANSPORT: Input should be 'maildir' or "
                                   "'smtp' (got \"sendmail\")")
    assert "Traceback" not in done.stderr


def test_secrets_are_resolved_at_load_and_later_changes_to_the_environment_change_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {"EDUDESK_IMAP_PASSWORD": "mật-khẩu", "EDUDESK_DATABASE_URL": "sqlite://{data_dir}/other.sqlite3",
               "EDUDESK_REDIS_URL": "redis://cache:6379/0", "EDUDESK_ISSUER_PIN": "123456", "UNNAMED": "x"}
    monkeypatch.setenv("EDUDESK_IMAP_PASSWORD", "mật-khẩu")
    settings = load_settings(None, overrides={"general": {"data_dir": str(tmp_path)}}, environ=environ)
    environ["EDUDESK_IMAP_PASSWORD"] = "changed"
    monkeypatch.setenv("EDUDESK_IMAP_PASSWORD", "changed")
    monkeypatch.setenv("EDUDESK_SMTP_PASSWORD", "set-too-late")
    assert settings.secret(settings.imap.password_env) == "mật-khẩu"
    assert settings.secret(settings.records.issuer.pin_env) == "123456"
    assert settings.secret(settings.outgoing.smtp_password_env) == ""  # unset at load
    assert settings.secret("UNNAMED") == ""  # only the variables the settings name are read
    assert settings.database_url == f"sqlite://{tmp_path}/other.sqlite3"
    assert settings.redis_url == "redis://cache:6379/0"
    assert "mật-khẩu" not in repr(settings) and "mật-khẩu" not in settings.model_dump_json()


def test_a_renamed_secret_variable_is_read_under_its_new_name() -> None:
    settings = load_settings(None, environ={"EDUDESK_IMAP__PASSWORD_ENV": "SCHOOL_IMAP_PW", "SCHOOL_IMAP_PW": "pw"})
    assert settings.imap.password_env == "SCHOOL_IMAP_PW"
    assert settings.secret(settings.imap.password_env) == "pw"


def test_settings_are_frozen_and_copies_keep_their_secrets() -> None:
    settings = load_settings(None, environ={"EDUDESK_TELEGRAM_TOKEN": "1:abc"})
    with pytest.raises(ValueError, match="frozen"):
        settings.smtpd.port = 1  # type: ignore[misc]
    copy = settings.model_copy(update={"smtpd": settings.smtpd.model_copy(update={"port": 26})})
    assert copy.smtpd.port == 26 and copy.secret("EDUDESK_TELEGRAM_TOKEN") == "1:abc"
    more = copy.with_secrets({"EDUDESK_DEMO_PIN": "0000"})
    assert more.secret("EDUDESK_DEMO_PIN") == "0000" and copy.secret("EDUDESK_DEMO_PIN") == ""


def environment_reads(source: str) -> list[int]:
    """Lines reading or writing the process environment: `os.environ`, `os.getenv`, `os.putenv`, or
    `environ`/`getenv` imported from os."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "environb", "getenv", "putenv", "unsetenv"):
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            if any(a.name in ("environ", "environb", "getenv", "putenv", "unsetenv") for a in node.names):
                lines.append(node.lineno)
    return lines


def test_the_scan_finds_every_form_of_reading_the_environment() -> None:
    sample = "import os\nfrom os import getenv\na = os.environ['X']\nb = os.getenv('Y')\nos.putenv('Z', '1')\n"
    assert environment_reads(sample) == [2, 3, 4, 5]
    assert environment_reads("settings.secret('X')\nenviron = {}\n") == []


def test_nothing_below_main_reads_the_environment() -> None:
    found = [f"{path.relative_to(ROOT)}:{line}"
             for folder in ("core", "bot", "mailer")
             for path in sorted((ROOT / "edudesk" / folder).rglob("*.py"))
             for line in environment_reads(path.read_text(encoding="utf-8"))]
    assert found == [], "settings are injected; only edudesk/app.py and cli/ read the environment: " + ", ".join(found)


def test_the_readme_documents_the_variables() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "EDUDESK_<SECTION>__<KEY>" in readme and json.dumps(["a.edu.vn"]) in readme
