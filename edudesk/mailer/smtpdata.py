"""aiosmtpd's SMTP session with a DATA phase that reads the message in blocks, not line by line.

aiosmtpd 1.4 reads DATA with one `readuntil(b"\\r\\n")` per line: about 700 awaits, log calls and list
appends for a 50 KB form mail, a fifth of the service's CPU in an intake burst. This session reads up to each
`.<CRLF>` (or as much as is buffered) instead, finds the terminating `<CRLF>.<CRLF>` in those blocks, and then
checks the whole message at once. The replies and the stored bytes are aiosmtpd's own, byte for byte:
`tests/integration/test_smtp_data.py` sends the same sessions to both and compares. One difference is left: a
mail both over the size limit and with an over-long line gets 500 here where aiosmtpd gives 552 when that line
comes after the limit but in the same block; either answer refuses the mail for good.
"""

from __future__ import annotations

import asyncio
import logging
from enum import Enum

from aiosmtpd.smtp import MISSING, SMTP, syntax

log = logging.getLogger(__name__)

_END = b".\r\n"
_LINE_START = b"\r\n"
TOO_LONG_REPLY = "500 Line too long (see RFC5321 4.5.3.1.6)"  # aiosmtpd's words
TOO_MUCH_REPLY = "552 Error: Too much mail data"


class DataState(Enum):
    """How a DATA phase ended: stored, or refused (after reading to the end, as RFC 5321 4.2.5 implies)."""

    NOMINAL = "nominal"
    TOO_LONG = "too_long"  # a line over the limit: 500
    TOO_MUCH = "too_much"  # more than the size limit: 552


def _long_line(data: bytes | bytearray, line_limit: int) -> bool:
    # Lines are counted with their CRLF, as aiosmtpd counts them; a bare LF does not end a line.
    return max(map(len, data.split(_LINE_START))) + 2 > line_limit


async def read_data(
    reader: asyncio.StreamReader, size_limit: int | None, line_limit: int
) -> tuple[bytearray, DataState]:
    """Read one DATA phase up to and without its `.<CRLF>` line: the still dot-stuffed bytes and the state.

    Raises `asyncio.IncompleteReadError` when the stream ends before the message does.
    """
    data = bytearray()
    tail = _LINE_START  # the last two bytes read: the 354 reply's command line ended with CRLF
    size = 0
    state = DataState.NOMINAL
    while True:
        try:
            block = await reader.readuntil(_END)
            ended = True
        except asyncio.LimitOverrunError as exc:
            # No ".<CRLF>" within the stream's limit: take what is buffered up to where one could start.
            block = await reader.read(exc.consumed)
            ended = False
        # A ".<CRLF>" ends the message only where it is a line of its own.
        before = block[-5:-3] if len(block) >= 5 else (bytes(tail) + block[:-3])[-2:]
        done = ended and before == _LINE_START
        if done:
            block = block[:-3]
        else:
            tail = block[-2:] if len(block) >= 2 else (bytes(tail) + block)[-2:]
        size += len(block)
        if state is DataState.NOMINAL:  # once refused, read on to the end, keeping nothing
            data += block
            if size_limit and size > size_limit:
                state = DataState.TOO_LONG if _long_line(data, line_limit) else DataState.TOO_MUCH
                data.clear()
        if done:
            break
    if state is DataState.NOMINAL and data and _long_line(data, line_limit):
        state = DataState.TOO_LONG
        data.clear()
    return data, state


def unstuff(data: bytearray) -> bytes:
    """Remove the dot that RFC 5321 4.5.2 puts before every line starting with one."""
    if data.startswith(b"."):
        del data[0]
    return bytes(data.replace(b"\r\n.", _LINE_START))


class BlockDataSMTP(SMTP):
    """aiosmtpd's SMTP session; only DATA is read differently (see the module's docstring)."""

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """DATA as aiosmtpd answers it: 354, the message, then 250 from the handler (or 500/552)."""
        if self._decode_data or "DATA" not in self._handle_hooks:  # not how edudesk runs it
            await super().smtp_DATA(arg)
            return
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            data, state = await read_data(self._reader, self.data_size_limit, self.line_length_limit)
        except asyncio.CancelledError:
            log.info("Connection lost during DATA")
            self._writer.close()
            raise
        except asyncio.IncompleteReadError:
            log.info("Connection closed during DATA")
            self._writer.close()
            return
        if state is not DataState.NOMINAL:
            too_long = state is DataState.TOO_LONG
            await self.push(TOO_LONG_REPLY if too_long else TOO_MUCH_REPLY)
            self._set_post_data_state()
            return
        content = unstuff(data)
        self.envelope.content = content
        self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)
