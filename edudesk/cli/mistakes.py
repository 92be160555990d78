"""Command-line mistakes answered in one line: argparse errors, missing files and folders, a port in use, a
database that does not open. `cli()` turns any exception into `edudesk: <words>` with exit 1 or 2."""

from __future__ import annotations

import argparse
import errno
import re
import sys
from datetime import date
from pathlib import Path
from typing import Any, NoReturn

from edudesk.core.words import words

_PORT = re.compile(r"""(?:\(['"][^'"]*['"],\s*|:)(\d{1,5})\)?""")
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a mistake is one line on stderr (exit 2) instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        """One line naming the command, the mistake and where help is."""
        print(f"{self.prog}: {message} ({self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def iso_date(text: str) -> date:
    """An argparse type: YYYY-MM-DD, else a one-line refusal."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(words("vi")("cli.error.bad_date", value=text)) from None


def _port_setting(port: int, settings: Any) -> str:
    """The config key that names a port, for the advice to change it."""
    if settings is None:
        return ""
    candidates = [("[smtpd] port", settings.smtpd.port, settings.smtpd.enabled),
                  ("[web] port", settings.web.port, settings.web.enabled),
                  ("[telegram] webhook_port", settings.telegram.webhook_port, settings.telegram.enabled),
                  ("[zalo] webhook_port", settings.zalo.webhook_port, settings.zalo.enabled)]
    return next((key for key, value, on in candidates if value == port and on), "")


def redact(text: str) -> str:
    """A message without a password written inside a URL (postgres://user:secret@host)."""
    return _URL_PASSWORD.sub(r"\1***@", text)


def explain(exc: BaseException, settings: Any = None) -> tuple[str, int]:
    """The one line (without the `edudesk: ` prefix) and the exit status for an exception of a command."""
    from edudesk.core.errors import EdudeskError

    lang = settings.general.language if settings is not None else "vi"
    w = words(lang)
    if isinstance(exc, EdudeskError):
        return exc.in_words(lang), 2
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        found = _PORT.findall(str(exc))
        port = int(found[-1]) if found else 0
        key = _port_setting(port, settings)
        return w("cli.error.port_in_use", port=port or "?", setting=key or w("cli.error.port_setting")), 1
    if isinstance(exc, OSError) and exc.filename is not None:
        path = Path(str(exc.filename))
        if isinstance(exc, FileNotFoundError):
            missing_folder = path.parent != Path(".") and not path.parent.exists()
            if missing_folder:
                return w("cli.error.no_folder", path=path.parent), 1
            return w("cli.error.no_file", path=path), 1
        if isinstance(exc, IsADirectoryError):
            return w("cli.error.is_folder", path=path), 1
        if isinstance(exc, NotADirectoryError):
            return w("cli.error.not_folder", path=path), 1
        if isinstance(exc, PermissionError):
            return w("cli.error.no_permission", path=path), 1
        return w("cli.error.os", path=path, reason=exc.strerror or type(exc).__name__), 1
    if _is_database_error(exc) or isinstance(exc, OSError):
        where = settings.database_url.split("@")[-1] if settings is not None else "?"
        reason = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return w("cli.error.database", where=where, reason=reason), 1
    reason = redact(str(exc).splitlines()[0] if str(exc) else "")
    return w("cli.error.unexpected", kind=type(exc).__name__, reason=reason), 1


def _is_database_error(exc: BaseException) -> bool:
    """tortoise's, sqlite3's or asyncpg's errors about reaching the database."""
    import sqlite3

    from tortoise.exceptions import ConfigurationError, DBConnectionError, OperationalError

    return isinstance(exc, DBConnectionError | OperationalError | ConfigurationError | sqlite3.Error) or (
        type(exc).__module__.startswith("asyncpg"))
