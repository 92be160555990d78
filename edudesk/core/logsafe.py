"""Log lines that say what a stranger sent without letting it forge lines or hide text.

Mail and chat put text chosen by anyone into the log (addresses, subjects, Message-IDs). A newline
there starts a fake log line, a NUL cuts the line short in many viewers, an escape sequence repaints
the terminal: every control character is written as a visible escape instead.
"""

from __future__ import annotations

import logging
import re

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def escape_controls(text: str) -> str:
    """Write control characters (0x00-0x1f, 0x7f) as \\xNN, leaving all other text as it is."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class EscapingFormatter(logging.Formatter):
    """A formatter whose message part never carries a raw control character.

    Only the message is escaped: a traceback appended to it keeps its own line breaks, because the
    service wrote those, not a sender.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        """Format the record with its message escaped."""
        message = record.message
        record.message = escape_controls(message)
        try:
            return super().formatMessage(record)
        finally:
            record.message = message


def install(level: str | int) -> None:
    """Set up the root logger for the service: one stream handler with the escaping formatter."""
    logging.basicConfig(level=level, format=LOG_FORMAT)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(EscapingFormatter(LOG_FORMAT))
