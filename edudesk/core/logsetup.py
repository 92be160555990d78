"""The service's logging: `[general].log_format` ("text" or "json") and libraries quiet unless DEBUG.

Text lines go through `core/logsafe.py` (control characters a stranger wrote are escaped); a JSON line is one
object per record, and JSON's own escaping keeps a newline in a subject from starting a fake record. Either
way only the record's message and its exception are written, never the call's extra fields.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from edudesk.core import logsafe
from edudesk.core.config import GeneralSettings

# Libraries whose INFO lines an operator cannot act on (a 40-record demo once printed 1,574 fontTools
# lines); they speak from WARNING unless [general].log_level is DEBUG. "mail.log" is aiosmtpd's: every
# SMTP command line at INFO, and a tenth of the listener's CPU.
QUIET_LOGGERS = ("fontTools", "tortoise", "aiosqlite", "asyncio", "aiohttp.access", "mailparser", "pyhanko",
                 "pyhanko_certvalidator", "msal", "urllib3", "google", "ldap3", "aiogram", "mail.log", "PIL",
                 "pypdf")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO-8601, UTC), level, logger, message, and exception when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


# pyHanko's validation logs every expected dead end of the LTA algorithm (a certificate expired at a date asked
# about, a path tried and left) as a warning with its traceback; what matters is in the report it returns.
VALIDATION_LOGGERS = ("pyhanko.sign.validation", "pyhanko_certvalidator")


def quiet_libraries(level: str) -> None:
    """Libraries at WARNING (pyHanko's validation at ERROR), or at the root's level again when `level` is DEBUG."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if level == "DEBUG" else logging.WARNING)
    for name in VALIDATION_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if level == "DEBUG" else logging.ERROR)


def install(general: GeneralSettings) -> None:
    """Set up the root logger from `[general]`: level, format, and the quiet libraries."""
    logsafe.install(general.log_level)
    if general.log_format == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
    quiet_libraries(general.log_level)
