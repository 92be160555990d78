"""The embedded SMTP listener: refuse early, store durably, and only then answer 250."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from core.config import SmtpdSettings
from core.ports import IntakeSink

log = logging.getLogger(__name__)
BACKLOG_RECHECK = 0.1  # seconds


class SmtpIntakeHandler:
    """aiosmtpd handler: thin, everything else happens in the `receive_mail` service (the sink)."""

    def __init__(self, sink: IntakeSink, settings: SmtpdSettings) -> None:
        self.sink = sink
        self.settings = settings
        self.recipients = {r.lower() for r in settings.recipients}
        self._backlog = 0
        self._backlog_at = float("-inf")

    async def _current_backlog(self) -> int:
        # One count per tenth of a second, however many sessions ask.
        now = time.monotonic()
        if now - self._backlog_at >= BACKLOG_RECHECK:
            self._backlog_at = now
            self._backlog = await self.sink.backlog()
        return self._backlog

    async def _room(self) -> bool:
        """Wait while the backlog is over the limit; False when it stays over for too long."""
        limit = self.settings.max_backlog
        if limit <= 0:
            return True
        deadline = time.monotonic() + self.settings.backlog_wait_seconds
        while await self._current_backlog() >= limit:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(BACKLOG_RECHECK)
        self._backlog += 1  # count this sender in until the next look, so a crowd is not all let in
        return True

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        """Flow control before the body is sent: hold the sender while too much mail waits unprocessed.

        A held sender loses nothing: past `backlog_wait_seconds` it gets 451 and its server retries.
        """
        if not await self._room():
            log.warning("SMTP: backlog over %s for %.0f s, asking %s to retry later", self.settings.max_backlog,
                        self.settings.backlog_wait_seconds, address)
            return "451 4.3.2 Too much mail waiting to be processed, please retry later"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        """Refuse recipients that are not ours (550) before any data is sent."""
        if self.recipients and address.lower() not in self.recipients:
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Store the raw message, then 250; a storage failure answers 451 so the sender retries."""
        raw = envelope.original_content or b""
        try:
            result = await self.sink.store(
                raw, source="smtp", envelope_from=str(envelope.mail_from or ""),
                envelope_to=tuple(envelope.rcpt_tos),
            )
        except Exception:  # noqa: BLE001 - never lose a mail: the sender keeps it and retries on 451
            log.exception("could not store a mail from %s", envelope.mail_from)
            return "451 4.3.0 Temporary failure storing the message, please retry"
        return f"250 2.0.0 OK stored as {result.mail_id}"


class SmtpIntake:
    """Runs the listener on the service's own event loop (no extra thread)."""

    def __init__(self, sink: IntakeSink, settings: SmtpdSettings) -> None:
        self.settings = settings
        self.handler = SmtpIntakeHandler(sink, settings)
        self.server: asyncio.Server | None = None

    def _factory(self) -> SMTP:
        return SMTP(self.handler, data_size_limit=self.settings.max_message_size, enable_SMTPUTF8=True,
                    hostname="edudesk", ident="edudesk ESMTP", timeout=300)

    async def start(self) -> Any:
        """Bind the port and start accepting."""
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(self._factory, host=self.settings.host, port=self.settings.port)
        log.info("SMTP listener on %s:%s", self.settings.host, self.port)
        return self.server

    @property
    def port(self) -> int:
        """The bound port (useful when configured as 0)."""
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def run(self) -> None:
        """Start (if needed) and serve until cancelled."""
        if self.server is None:
            await self.start()
        assert self.server is not None
        try:
            await self.server.serve_forever()
        finally:
            self.server.close()

    async def stop(self) -> None:
        """Stop accepting."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
