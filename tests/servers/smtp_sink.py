"""A real aiosmtpd SMTP server on 127.0.0.1 that keeps what it receives, and the `smtp_sink` fixture."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ReceivedMail:
    """One mail as the sink saw it: the SMTP envelope, the raw bytes and the parsed message."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    message: EmailMessage

    @property
    def subject(self) -> str:
        """The decoded Subject header."""
        return str(self.message["Subject"] or "")


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.lower() in self.sink.refuse:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        message = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(message, EmailMessage)
        mail = ReceivedMail(str(envelope.mail_from), tuple(envelope.rcpt_tos), raw, message)
        self.sink._add(mail)
        return "250 Message accepted for delivery"


class SmtpSink:
    """aiosmtpd on its own thread and a free port; `messages` fills as mail arrives.

    `refuse` lists recipients answered with 550; `credentials` (user, password) turns on AUTH
    (allowed without TLS, as this is a loopback test server).
    """

    def __init__(self, *, refuse: set[str] | None = None, credentials: tuple[str, str] | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.refuse = {r.lower() for r in refuse or ()}
        self.credentials = credentials
        self.messages: list[ReceivedMail] = []
        self._lock = threading.RLock()
        self._arrival = threading.Condition(self._lock)
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        kwargs: dict[str, Any] = {}
        if credentials is not None:
            kwargs = {"authenticator": self._authenticate, "auth_require_tls": False}
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port, **kwargs)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: object
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword) and self.credentials is not None:
            user, password = self.credentials
            if auth_data.login.decode() == user and auth_data.password.decode() == password:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def start(self) -> SmtpSink:
        """Start listening; returns self."""
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop listening and free the port."""
        self._controller.stop()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def received(self) -> list[ReceivedMail]:
        """A snapshot of what arrived so far."""
        with self._lock:
            return list(self.messages)

    def _match(self, predicate: Callable[[ReceivedMail], bool]) -> ReceivedMail | None:
        return next((m for m in self.received() if predicate(m)), None)

    def _match_locked(self, predicate: Callable[[ReceivedMail], bool]) -> ReceivedMail | None:
        return next((m for m in self.messages if predicate(m)), None)

    async def wait_for(
        self,
        predicate: Callable[[ReceivedMail], bool] = lambda m: True,
        timeout: float = 5.0,  # noqa: ASYNC109 - the brief's signature; applied with asyncio.timeout
    ) -> ReceivedMail:
        """Wait (without blocking the loop) until a received mail matches; TimeoutError otherwise."""
        arrived = asyncio.Event()
        waiter = (asyncio.get_running_loop(), arrived)
        with self._lock:
            self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                # Clear before checking: a mail landing after the check sets the event again.
                while (found := self._match(predicate)) is None:
                    await arrived.wait()
                    arrived.clear()
        except TimeoutError:
            raise TimeoutError(f"no matching mail within {timeout}s; got {self._summary()}") from None
        finally:
            with self._lock:
                self._waiters.remove(waiter)
        return found

    def wait_for_sync(
        self, predicate: Callable[[ReceivedMail], bool] = lambda m: True, timeout: float = 5.0
    ) -> ReceivedMail:
        """Blocking variant of `wait_for` for synchronous tests."""
        with self._arrival:
            if not self._arrival.wait_for(lambda: self._match_locked(predicate) is not None, timeout):
                raise TimeoutError(f"no matching mail within {timeout}s; got {self._summary_locked()}")
            found = self._match_locked(predicate)
        assert found is not None
        return found

    def _add(self, mail: ReceivedMail) -> None:
        # Called on the controller's thread: wake sync waiters directly, async ones on their own loop.
        with self._arrival:
            self.messages.append(mail)
            self._arrival.notify_all()
            for loop, event in self._waiters:
                loop.call_soon_threadsafe(event.set)

    def _summary(self) -> str:
        with self._lock:
            return self._summary_locked()

    def _summary_locked(self) -> str:
        return repr([(m.rcpt_tos, m.subject) for m in self.messages])


@pytest.fixture(name="smtp_sink")
def smtp_sink_fixture() -> Iterator[SmtpSink]:
    """A running SmtpSink for one test."""
    with SmtpSink() as sink:
        yield sink
