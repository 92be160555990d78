"""`[general].log_format` and the quiet libraries: what an operator's log collector reads."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from edudesk.core.logsafe import EscapingFormatter
from edudesk.core.logsetup import QUIET_LOGGERS, JsonFormatter

ROOT = Path(__file__).resolve().parents[2]
# The service's own setup in a fresh interpreter (the test run's root logger stays as pytest set it).
SCRIPT = """
import logging, sys
from edudesk.core.config import load_settings
from edudesk.core.logsetup import install
settings = load_settings(None, overrides={"general": {"log_format": sys.argv[1], "log_level": sys.argv[2]}},
                         environ={})
install(settings.general)
logging.getLogger("edudesk.intake").info("mail from %s", "an@x.vn\\n2026-09-01 forged ERROR line\\x1b[2J")
logging.getLogger("fontTools.subset").info("subsetting glyphs")
logging.getLogger("tortoise").warning("a library's warning")
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("edudesk.jobs").exception("job 7 raised", extra={"password": "hunter2-secret"})
"""


def _run(log_format: str, level: str = "INFO") -> list[str]:
    done = subprocess.run([sys.executable, "-c", SCRIPT, log_format, level], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stderr.splitlines()


def test_json_log_is_one_object_per_line_with_time_level_logger_message_and_exception() -> None:
    lines = _run("json")
    records = [json.loads(line) for line in lines]  # every line is one whole JSON object
    assert [(r["level"], r["logger"]) for r in records] == [
        ("INFO", "edudesk.intake"), ("WARNING", "tortoise"), ("ERROR", "edudesk.jobs")]
    first = records[0]
    assert first["message"] == "mail from an@x.vn\n2026-09-01 forged ERROR line\x1b[2J"  # kept, but inside one line
    assert first["time"].endswith("+00:00") and first["time"][:4].isdigit() and "T" in first["time"]
    assert "exception" not in first
    assert "ZeroDivisionError: division by zero" in records[2]["exception"]
    assert "hunter2" not in "\n".join(lines)  # a call's extra fields are never written


def test_text_log_escapes_control_characters_and_keeps_libraries_quiet() -> None:
    lines = _run("text")
    assert len([line for line in lines if " INFO " in line or " ERROR " in line or " WARNING " in line]) == 3
    assert "mail from an@x.vn\\x0a2026-09-01 forged ERROR line\\x1b[2J" in lines[0]
    assert not any("fontTools" in line for line in lines)
    assert any("Traceback" in line for line in lines) and "hunter2" not in "\n".join(lines)


def test_debug_lets_the_libraries_speak() -> None:
    lines = _run("json", "DEBUG")
    assert any(json.loads(line)["logger"] == "fontTools.subset" for line in lines)


def test_json_formatter_and_escaping_formatter_agree_on_the_message() -> None:
    record = logging.LogRecord("edudesk", logging.WARNING, __file__, 1, "YC-%d: %s", (3, "a\r\nb"), None)
    assert json.loads(JsonFormatter().format(record))["message"] == "YC-3: a\r\nb"
    assert EscapingFormatter("%(message)s").format(record) == "YC-3: a\\x0d\\x0ab"
    assert {"fontTools", "tortoise", "aiosqlite", "asyncio", "aiohttp.access", "mailparser", "pyhanko", "msal",
            "urllib3", "google", "ldap3", "aiogram"} <= set(QUIET_LOGGERS)


@pytest.mark.slow
def test_records_demo_prints_no_fonttools_line_and_logs_json(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[general]\ndata_dir = "{tmp_path / "data"}"\nlog_format = "json"\n'
                      '[intake]\nparser_processes = 1\n', encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "edudesk", "--config", str(config),
                           "records", "demo", "--students", "2", "--sign", "--out", str(tmp_path / "out")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "fontTools" not in done.stdout + done.stderr
    for line in done.stderr.splitlines():  # whatever is logged is the collector's JSON
        assert json.loads(line)["level"] in ("INFO", "WARNING", "ERROR", "CRITICAL")
    assert len(list((tmp_path / "out").glob("HS*.pdf"))) == 2


# The parser and signing workers are spawned processes: they start with Python's default logging unless they
# set up the service's own, and their lines go to the same stderr as the service's.
WORKERS = """
import asyncio, logging, sys
from edudesk.core.config import load_settings
from edudesk.core.logsetup import install
from edudesk.core.signing.engine import SigningPool
from edudesk.mailer.analyse import ProcessMailAnalyser

settings = load_settings(None, overrides={"general": {"log_format": "json", "log_level": "INFO"},
                                          "intake": {"parser_processes": 1}}, environ={})
install(settings.general)

async def main():
    analyser = ProcessMailAnalyser(settings)
    pool = await analyser._ensure_pool()
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(pool, logging.getLogger("edudesk.parse").warning, "from the parser\\nworker")
    await loop.run_in_executor(pool, logging.getLogger("fontTools.subset").info, "quiet in the worker too")
    analyser.close()
    signing = SigningPool(1, general=settings.general)
    await loop.run_in_executor(signing._executor, logging.getLogger("edudesk.sign").warning, "from the signer")
    signing._executor.shutdown(wait=True)

asyncio.run(main())
"""


def test_worker_processes_write_the_services_json_lines() -> None:
    done = subprocess.run([sys.executable, "-c", WORKERS], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines()]  # every line, the workers' too, is JSON
    by_logger = {r["logger"]: r["message"] for r in records}
    assert by_logger["edudesk.parse"] == "from the parser\nworker"
    assert by_logger["edudesk.sign"] == "from the signer"
    assert "fontTools.subset" not in by_logger


def test_pyhanko_validation_dead_ends_stay_out_of_the_log_unless_debug() -> None:
    from edudesk.core.logsetup import VALIDATION_LOGGERS, quiet_libraries

    checker = logging.getLogger("pyhanko_certvalidator.validate")
    before = {name: logging.getLogger(name).level for name in (*QUIET_LOGGERS, *VALIDATION_LOGGERS)}
    try:
        quiet_libraries("INFO")
        assert not checker.isEnabledFor(logging.WARNING) and checker.isEnabledFor(logging.ERROR)
        assert logging.getLogger("pyhanko.sign.signers").isEnabledFor(logging.WARNING)  # signing still speaks
        quiet_libraries("DEBUG")
        assert checker.getEffectiveLevel() == logging.getLogger().getEffectiveLevel()
    finally:
        for name, level in before.items():
            logging.getLogger(name).setLevel(level)
