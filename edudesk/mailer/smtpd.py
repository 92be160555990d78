"""The embedded SMTP listener: refuse early, store durably, and only then answer 250."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import time
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from edudesk.core.config import IntakeSettings, SmtpdSettings
from edudesk.core.intake.ledger import raw_message_id
from edudesk.core.intake.sender import own_authserv_id
from edudesk.core.ports import IntakeSink
from edudesk.mailer.authverify import temperror_results, verify_in_thread, with_results
from edudesk.mailer.smtpdata import BlockDataSMTP

log = logging.getLogger(__name__)
BACKLOG_RECHECK = 0.1  # seconds
BACKLOG_TIMEOUT = 10.0  # seconds: a count the database does not answer in time (a lock) is a "retry later"
STORE_TIMEOUT = 120.0  # seconds: well inside a sender's DATA timeout (RFC 5321: 10 minutes)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Temporary answers name no exception and no database: a real sender keeps the mail and retries.
RETRY_LATER = "451 4.3.0 Temporary local problem, please retry later"
STORE_FAILED = "451 4.3.0 Temporary failure storing the message, please retry"
BAD_SENDER = "501 5.1.7 Bad sender address syntax"
BAD_RECIPIENT = "501 5.1.3 Bad recipient address syntax"
BAD_MESSAGE_ID = "501 5.6.0 Syntax error: control character in the Message-ID header"


class SmtpIntakeHandler:
    """aiosmtpd handler: thin, everything else happens in the `receive_mail` service (the sink)."""

    def __init__(self, sink: IntakeSink, settings: SmtpdSettings, intake: IntakeSettings | None = None) -> None:
        self.sink = sink
        self.settings = settings
        self.intake = intake  # None: no sender verification and no Authentication-Results handling at all
        self.relays = [ipaddress.ip_network(r.strip(), strict=False) for r in settings.trusted_relays]
        self.recipients = {r.lower() for r in settings.recipients}
        self._backlog = 0
        self._backlog_at = float("-inf")

    async def _current_backlog(self) -> int:
        # One count per tenth of a second, however many sessions ask.
        now = time.monotonic()
        if now - self._backlog_at >= BACKLOG_RECHECK:
            self._backlog_at = now
            self._backlog = await asyncio.wait_for(self.sink.backlog(), BACKLOG_TIMEOUT)
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

        A held sender loses nothing: past `backlog_wait_seconds` it gets 451 and its server retries. So
        does a sender arriving while the database cannot be read (locked, down): 451, never a 5xx.
        """
        if _CONTROL.search(address):
            # A NUL in an address cannot be stored and never will be: refuse it once, for good.
            log.warning("SMTP: refused a sender address with a control character: %s", address[:320])
            return BAD_SENDER
        try:
            room = await self._room()
        except Exception:  # noqa: BLE001 - a database that is down or locked: the sender tries again later
            log.exception("SMTP: could not count the waiting mail, asking %s to retry later", address[:320])
            return RETRY_LATER
        if not room:
            log.warning("SMTP: backlog over %s for %.0f s, asking %s to retry later", self.settings.max_backlog,
                        self.settings.backlog_wait_seconds, address)
            return "451 4.3.2 Too much mail waiting to be processed, please retry later"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        """Refuse recipients that are not ours (550) before any data is sent."""
        if _CONTROL.search(address):
            log.warning("SMTP: refused a recipient address with a control character: %s", address[:320])
            return BAD_RECIPIENT
        if self.recipients and address.lower() not in self.recipients:
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Store the raw message, then 250; a storage failure answers 451 so the sender retries."""
        raw = envelope.original_content or b""
        if _CONTROL.search(raw_message_id(raw)):
            log.warning("SMTP: refused a mail from %s whose Message-ID has a control character", envelope.mail_from)
            return BAD_MESSAGE_ID
        raw = await self._authenticated(raw, session, envelope)
        try:
            # A store the database never answers is a 451 too: if it commits after all, the retry is a duplicate.
            result = await asyncio.wait_for(self.sink.store(
                raw, source="smtp", envelope_from=str(envelope.mail_from or ""),
                envelope_to=tuple(envelope.rcpt_tos),
            ), STORE_TIMEOUT)
        except Exception:  # noqa: BLE001 - never lose a mail: the sender keeps it and retries on 451
            log.exception("could not store a mail from %s", envelope.mail_from)
            return STORE_FAILED
        return f"250 2.0.0 OK stored as {result.mail_id}"

    def _trusted_relay(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.relays)

    async def _authenticated(self, raw: bytes, session: Session, envelope: Envelope) -> bytes:
        """The mail with forged Authentication-Results bearing our id removed and, for mail from outside
        (not a trusted relay), our own SPF/DKIM/DMARC results on top. Never fails: the mail is kept."""
        if self.intake is None:
            return raw
        own_id = own_authserv_id(self.intake)
        peer = str(session.peer[0]) if isinstance(session.peer, tuple) and session.peer else ""
        try:
            if not self.intake.verify_senders or self._trusted_relay(peer):
                return with_results(raw, None, own_id)
            value = await verify_in_thread(raw, peer, str(session.host_name or ""),
                                           str(envelope.mail_from or ""), self.intake)
            return with_results(raw, value, own_id)
        except Exception:  # noqa: BLE001 - checking the sender must never lose the mail
            log.exception("SMTP: could not check the sender of a mail from %s", envelope.mail_from)
            # our (temperror) header on top still outranks any copy with our id the sender wrote below it
            return f"Authentication-Results: {temperror_results(self.intake)}\r\n".encode() + raw

    async def handle_exception(self, error: Exception) -> str:
        """Anything else that fails in a session: 451 (aiosmtpd would answer 500 and name the exception)."""
        log.error("SMTP: session failed (%s), asking the sender to retry later", type(error).__name__,
                  exc_info=error)
        return RETRY_LATER


class SmtpIntake:
    """Runs the listener on the service's own event loop (no extra thread)."""

    def __init__(self, sink: IntakeSink, settings: SmtpdSettings, intake: IntakeSettings | None = None) -> None:
        self.settings = settings
        self.handler = SmtpIntakeHandler(sink, settings, intake)
        self.server: asyncio.Server | None = None

    def _factory(self) -> BlockDataSMTP:
        return BlockDataSMTP(self.handler, data_size_limit=self.settings.max_message_size, enable_SMTPUTF8=True,
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
