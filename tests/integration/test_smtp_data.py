"""The DATA phase read in blocks (`mailer/smtpdata.py`) against aiosmtpd's own, line by line.

The same raw SMTP sessions go over real sockets to a stock aiosmtpd `SMTP` and to `BlockDataSMTP`; every
reply and every stored message must be the same, byte for byte, whatever the message and however the
client cuts it into packets.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from edudesk.core.config import SmtpdSettings
from edudesk.mailer.smtpd import SmtpIntake
from edudesk.mailer.smtpdata import BlockDataSMTP, DataState, read_data

SIZE_LIMIT = 60_000


class Recorder:
    """A handler that keeps what it is given and answers 250."""

    def __init__(self) -> None:
        self.stored: list[bytes] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.stored.append(envelope.original_content or b"")
        assert envelope.content == envelope.original_content
        return "250 OK stored"


class Server:
    def __init__(self, cls: type[SMTP]) -> None:
        self.cls = cls
        self.handler = Recorder()
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: self.cls(self.handler, data_size_limit=SIZE_LIMIT, enable_SMTPUTF8=True, hostname="t"),
            host="127.0.0.1", port=0)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])


async def _reply(reader: asyncio.StreamReader) -> str:
    lines = []
    while True:
        line = (await asyncio.wait_for(reader.readline(), 10)).decode()
        lines.append(line.rstrip("\r\n"))
        if len(line) < 4 or line[3] != "-":
            return "\n".join(lines)


async def _session(port: int, messages: Sequence[Sequence[bytes]], *, pipelined_quit: bool = False) -> list[str]:
    """EHLO, then for each message MAIL/RCPT/DATA and its packets (each written and flushed on its own)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    replies = [await _reply(reader)]

    async def command(line: bytes) -> None:
        writer.write(line + b"\r\n")
        replies.append(await _reply(reader))

    await command(b"EHLO client.example")
    for packets in messages:
        await command(b"MAIL FROM:<a@example.org>")
        await command(b"RCPT TO:<it@truong.edu.vn>")
        await command(b"DATA")
        for i, packet in enumerate(packets):
            last = i == len(packets) - 1
            writer.write(packet + (b"QUIT\r\n" if last and pipelined_quit else b""))
            await writer.drain()
            await asyncio.sleep(0.001 if len(packets) < 50 else 0)
        replies.append(await _reply(reader))
    if pipelined_quit:
        replies.append(await _reply(reader))
    else:
        await command(b"QUIT")
    writer.close()
    return replies


def _cut(data: bytes, sizes: Sequence[int]) -> list[bytes]:
    out, at, i = [], 0, 0
    while at < len(data):
        out.append(data[at:at + sizes[i % len(sizes)]])
        at += sizes[i % len(sizes)]
        i += 1
    return out


def _b64_mail(lines: int) -> bytes:
    rng = random.Random(lines)
    head = b"Subject: =?utf-8?b?xJDGoW4=?=\r\nContent-Type: application/octet-stream\r\n\r\n"
    body = b"".join(bytes(rng.choice(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
                          for _ in range(76)) + b"\r\n" for _ in range(lines))
    return head + body + b".\r\n"


DOTS = (b"Subject: dots\r\n\r\n.leading dot (stuffed)\r\n..\r\nends with a dot.\r\nx.\r\n...\r\n"
        b"a\n.\nbare LF is not a line end\r\n.. two\r\n.\r\n")
CASES: dict[str, list[list[bytes]]] = {
    "plain": [[b"Subject: hi\r\n\r\nXin ch\xc3\xa0o\r\n.\r\n"]],
    "empty": [[b".\r\n"]],
    "one line": [[b"only\r\n.\r\n"]],
    "dots": [[DOTS]],
    "dots, a byte a packet": [_cut(DOTS, [1])],
    "terminator cut everywhere": [_cut(b"Subject: cut\r\n\r\nbody.\r\n.\r\n", [3, 1, 2, 4])],
    "base64 700 lines": [[_b64_mail(700)]],
    "base64 in random packets": [_cut(_b64_mail(200), [1, 700, 13, 4096, 2, 77])],
    "line of 999 + CRLF": [[b"Subject: max\r\n\r\n" + b"x" * 999 + b"\r\n.\r\n"]],
    "line of 1000 + CRLF, then a good mail": [[b"Subject: long\r\n\r\n" + b"x" * 1000 + b"\r\n.\r\n"],
                                              [b"Subject: next\r\n\r\nok\r\n.\r\n"]],
    "line of 5000, then a good mail": [_cut(b"a\r\n" + b"y" * 5000 + b"\r\nb\r\n.\r\n", [1500]),
                                       [b"ok\r\n.\r\n"]],
    "too much, then a good mail": [[b"Subject: big\r\n\r\n" + b"z" * 900 + b"\r\n"] * 70 + [b".\r\n"],
                                   [b"ok\r\n.\r\n"]],
    "exactly the limit": [[b"y" * 998 + b"\r\n"] * 60 + [b".\r\n"]],
    "one byte over the limit": [[b"y" * 998 + b"\r\n"] * 60 + [b"\r\n.\r\n"]],
    "two mails in one session": [[b"first\r\n.\r\n"], [b"second\r\n..\r\n.\r\n"]],
}


@pytest.fixture
async def servers() -> AsyncIterator[tuple[Server, Server]]:
    async with Server(SMTP) as stock, Server(BlockDataSMTP) as block:
        yield stock, block


@pytest.mark.parametrize("case", list(CASES))
async def test_block_reader_answers_and_stores_what_aiosmtpd_does(servers: tuple[Server, Server], case: str) -> None:
    stock, block = servers
    want = await _session(stock.port, CASES[case])
    got = await _session(block.port, CASES[case])
    assert got == want
    assert block.handler.stored == stock.handler.stored


async def test_the_cases_cover_every_answer(servers: tuple[Server, Server]) -> None:
    """The comparison above is only worth something if the cases reach 250, 500 and 552 and unstuff dots."""
    stock, block = servers
    replies = [r for case in CASES.values() for r in await _session(block.port, case)]
    assert any(r.startswith("250 OK stored") for r in replies)
    assert any(r.startswith("500 Line too long") for r in replies)
    assert any(r.startswith("552 ") for r in replies)
    assert b"\r\n.\r\n" in b"".join(block.handler.stored)  # a stuffed lone dot, stored as a lone dot
    assert b"\r\n..." not in b"".join(block.handler.stored)


async def test_quit_pipelined_after_the_final_dot_is_answered(servers: tuple[Server, Server]) -> None:
    stock, block = servers
    mail = [[b"Subject: p\r\n\r\nbody\r\n.\r\n"]]
    want = await _session(stock.port, mail, pipelined_quit=True)
    assert want[-2].startswith("250") and want[-1].startswith("221")
    assert await _session(block.port, mail, pipelined_quit=True) == want
    assert block.handler.stored == stock.handler.stored == [b"Subject: p\r\n\r\nbody\r\n"]


async def test_a_client_gone_in_the_middle_of_data_stores_nothing_and_the_server_goes_on(
        servers: tuple[Server, Server]) -> None:
    _, block = servers
    reader, writer = await asyncio.open_connection("127.0.0.1", block.port)
    await _reply(reader)
    for line in (b"EHLO c", b"MAIL FROM:<a@example.org>", b"RCPT TO:<b@example.org>", b"DATA"):
        writer.write(line + b"\r\n")
        await _reply(reader)
    writer.write(b"Subject: half\r\n\r\nhalf a mail\r\n")
    await writer.drain()
    writer.close()
    await asyncio.sleep(0.1)
    assert block.handler.stored == []
    assert (await _session(block.port, [[b"after\r\n.\r\n"]]))[-2].startswith("250")
    assert block.handler.stored == [b"after\r\n"]


class CountingReader(asyncio.StreamReader):
    calls = 0

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        self.calls += 1
        return await super().readuntil(separator)


async def test_a_700_line_form_mail_is_read_in_a_few_calls_not_one_per_line() -> None:
    """The point of the block reader: aiosmtpd makes 700 `readuntil` calls for this mail."""
    reader = CountingReader(limit=1001)
    mail = _b64_mail(700)
    reader.feed_data(mail + b"QUIT\r\n")
    data, state = await read_data(reader, 10_000_000, 1001)
    assert state is DataState.NOMINAL
    assert bytes(data) == mail[:-3]
    assert reader.calls <= 3
    assert await reader.readuntil(b"\r\n") == b"QUIT\r\n"  # what follows the mail is left for the session


async def test_the_service_listens_with_the_block_reader() -> None:
    intake = SmtpIntake(sink=Any, settings=SmtpdSettings())  # type: ignore[arg-type]
    assert type(intake._factory()) is BlockDataSMTP
