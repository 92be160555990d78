"""Outgoing mail transports behind the core's `MailSender`: a local maildir sink and an SMTP relay."""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import logging
import os
import secrets
import smtplib
import ssl
from email.charset import BASE64, QP, Charset
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.mime.text import MIMEText
from email.policy import Compat32
from email.utils import formataddr, formatdate, parseaddr
from pathlib import Path

from edudesk.core.config import Settings
from edudesk.core.errors import ConfigError, EdudeskError
from edudesk.core.ports import MailSender, OutgoingMessage
from edudesk.mailer.oauth import MailAuthError, TokenSource, make_token_source, sasl_string
from edudesk.mailer.render import build_message, message_id_for, render_mail, with_attachments

__all__ = [
    "MailSendError",
    "MaildirMailSender",
    "SmtpMailSender",
    "build_message",
    "make_mail_sender",
    "message_id_for",
    "render_mail",
    "to_mime",
]

log = logging.getLogger(__name__)

# Headers to_mime() builds itself from the message's fields; a stray copy in `headers` must not
# produce a second From or Message-ID.
_STRUCTURAL = {"from", "to", "subject", "message-id", "in-reply-to", "references", "mime-version"}
_STRUCTURAL |= {"content-type", "content-transfer-encoding"}


class MailSendError(EdudeskError):
    """A mail could not be handed to the transport; `permanent` says whether retrying can help."""

    code = "mail_send"

    def __init__(self, message: str, *, permanent: bool = False, auth: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
        # The relay refused edudesk's own login (password or OAuth2): an outage of the channel to be fixed by
        # staff, not a fault of this mail, so the mail waits instead of dying.
        self.auth = auth


# The compat32 MIME classes: the modern EmailMessage API folds headers about seven times slower
# (~14 ms against ~2 ms per acknowledgement here), which is most of the intake's CPU in a burst.
_UTF8_QP = Charset("utf-8")
_UTF8_QP.header_encoding = BASE64  # RFC 2047 B-encoding for Vietnamese subjects and names
_UTF8_QP.body_encoding = QP  # quoted-printable keeps the text 7-bit clean for relays without 8BITMIME


class _Compat32(Compat32):
    """compat32, with a header line that needs no folding written as it is.

    compat32 runs every header through `email.header.Header` to fold it, a third of the time an
    acknowledgement takes to build; a short ASCII value on one line comes out of it unchanged.
    `tests/unit/test_outbox_mime.py` compares the two.
    """

    def _unfolded(self, name: str, value: object) -> str | None:
        if (isinstance(value, str) and value.isascii() and value.isprintable() and value.strip() == value
                and "  " not in value and len(name) + 2 + len(value) <= (self.max_line_length or 78)):
            return f"{name}: {value}{self.linesep}"
        return None

    def fold(self, name: str, value: str) -> str:
        """As compat32, faster for a short ASCII value."""
        line = self._unfolded(name, value)
        return super().fold(name, value) if line is None else line

    def fold_binary(self, name: str, value: str) -> bytes:
        """As compat32, faster for a short ASCII value."""
        line = self._unfolded(name, value)
        return super().fold_binary(name, value) if line is None else line.encode("ascii")


_CRLF = _Compat32(linesep="\r\n")
_LF = _Compat32(linesep="\n")


def _text_part(body: str, subtype: str) -> Message:
    """text/<subtype>, utf-8, quoted-printable, as MIMEText writes it but encoded by binascii's C code.

    MIMEText encodes in pure Python (`email.quoprimime`), eight times slower. The headers are the same and
    the body decodes to the same text; binascii places a few soft line breaks elsewhere and also encodes a
    "." alone on a line. A body with a CR is left to MIMEText: the two split such lines differently.
    """
    if "\r" in body:
        return MIMEText(body, subtype, _UTF8_QP)  # type: ignore[arg-type]  # runtime takes a Charset
    part = MIMENonMultipart("text", subtype, charset="utf-8")
    part["Content-Transfer-Encoding"] = "quoted-printable"
    part.set_payload(binascii.b2a_qp(body.encode("utf-8"), istext=True).decode("ascii"))
    return part


def _header(value: str, name: str) -> str:
    """The value as is when ASCII, else RFC 2047-encoded and folded to fit after `name: `."""
    return value if value.isascii() else Header(value, _UTF8_QP, header_name=name).encode()


@functools.lru_cache(maxsize=64)
def _from_value(sender: str) -> str:
    """The From header's value, its display name RFC 2047-encoded (one sender for nearly every mail: parsed and
    encoded once, not per mail)."""
    name, addr = parseaddr(sender)
    return formataddr((name, addr), charset="utf-8") if name else (addr or sender)


def _header_items(msg: OutgoingMessage) -> list[tuple[str, str]]:
    """The message's own header lines, in order, after the body's Content-Type and MIME-Version: the sender,
    recipients, subject (RFC 2047 where not ASCII), threading, the extra headers (a structural one among them
    is left out, a repeated name keeps the last) and a Date when none was given."""
    items = [("From", _from_value(msg.sender)),
             ("To", _header(", ".join(msg.to), "To")), ("Subject", _header(msg.subject, "Subject")),
             ("Message-ID", msg.message_id)]
    if msg.in_reply_to:
        items.append(("In-Reply-To", msg.in_reply_to))
    if msg.references:
        items.append(("References", " ".join(msg.references)))
    for key, value in msg.headers.items():
        if key.lower() in _STRUCTURAL:
            continue
        items = [(k, v) for k, v in items if k.lower() != key.lower()]
        items.append((key, _header(value, key)))
    if not any(k.lower() == "date" for k, _ in items):
        items.append(("Date", formatdate(usegmt=True)))
    return items


def _email_message(msg: OutgoingMessage) -> Message:
    text = _text_part(msg.text, "plain")
    mail: Message
    if msg.html:
        mail = MIMEMultipart("alternative")
        mail.attach(text)
        mail.attach(_text_part(msg.html, "html"))
    else:
        mail = text
    mail = with_attachments(mail, msg.attachments)
    for key, value in _header_items(msg):
        mail[key] = value
    for part in mail.walk():
        if part.is_multipart():
            # "=_" never occurs in quoted-printable or base64 text, so the generator need not search the parts
            # for a clash (a regular expression compiled for every mail otherwise).
            part.set_boundary(f"=_edudesk_{secrets.token_hex(12)}")
    return mail


def _alternative_bytes(msg: OutgoingMessage, policy: _Compat32) -> bytes | None:
    """The bytes `_email_message(msg).as_bytes(policy)` writes, without building the message objects first,
    for the shape of nearly every mail sent (an acknowledgement): text and HTML, nothing attached, no CR in
    either body. None for any other shape. The stdlib's generator spends ~0.6 ms of an acknowledgement's ~3 ms
    walking objects to write these few lines; the headers are folded by the same policy calls it makes.
    `tests/unit/test_outbox_mime.py` compares the two byte for byte.
    """
    if not msg.html or msg.attachments or "\r" in msg.text or "\r" in msg.html:
        return None
    boundary = f"=_edudesk_{secrets.token_hex(12)}"
    headers = [("Content-Type", f'multipart/alternative; boundary="{boundary}"'), ("MIME-Version", "1.0"),
               *_header_items(msg)]
    nl = policy.linesep.encode("ascii")
    dash = b"--" + boundary.encode("ascii")
    out = [policy.fold_binary(k, v) for k, v in headers]
    out.append(nl)
    for body, subtype in ((msg.text, "plain"), (msg.html, "html")):
        out += [dash, nl, _PART_HEADERS[subtype].replace(b"\n", nl), nl]
        out.append(binascii.b2a_qp(body.encode("utf-8"), istext=True).replace(b"\n", nl))
        out.append(nl)
    out += [dash, b"--", nl]
    return b"".join(out)


# A text part's own header lines, as `_text_part` sets them (LF; the writer puts the policy's line end).
_PART_HEADERS = {subtype: (f'Content-Type: text/{subtype}; charset="utf-8"\nMIME-Version: 1.0\n'
                           "Content-Transfer-Encoding: quoted-printable\n").encode("ascii")
                 for subtype in ("plain", "html")}


def mime_bytes(msg: OutgoingMessage, policy: _Compat32) -> bytes:
    """The message as MIME bytes with `policy`'s line ends (`_CRLF` on the wire, `_LF` in a maildir)."""
    fast = _alternative_bytes(msg, policy)
    return fast if fast is not None else _email_message(msg).as_bytes(policy=policy)


def to_mime(msg: OutgoingMessage) -> bytes:
    """Serialise a message as MIME bytes (CRLF, utf-8, multipart/alternative when there is HTML)."""
    return mime_bytes(msg, _CRLF)


def _bare_address(sender: str) -> str:
    return parseaddr(sender)[1] or sender


class MaildirMailSender:
    """Delivers into a local Maildir; the same Message-ID is stored once however often it is sent."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._folders_made = False  # tmp/, new/ and cur/: made at the first send, and again if removed

    def file_name(self, message_id: str) -> str:
        """The file name a Message-ID is stored under (a hash, so retries land on the same name)."""
        digest = hashlib.sha256(message_id.strip().encode("utf-8")).hexdigest()[:40]
        return f"edudesk.{digest}"

    async def send(self, message: OutgoingMessage) -> None:
        """Store the message in new/ unless a message with its Message-ID is already there."""
        # Maildir files use the local line ending; mail clients and Dovecot expect LF on Unix.
        data = mime_bytes(message, _LF)
        try:
            await asyncio.to_thread(self._deliver, self.file_name(message.message_id), data)
        except OSError as exc:
            raise MailSendError(f"Không ghi được thư vào thư mục {self.path}: {exc}") from exc

    def _delivered(self, name: str) -> bool:
        # A mail client moves read mail to cur/ and appends ":2,<flags>" to the name. One pass over cur/ with
        # plain string tests: a glob pattern per mail (a regular expression compiled for each new name) cost
        # ~0.2 ms of CPU a send, more than writing and syncing the file.
        if os.path.lexists(os.path.join(self.path, "new", name)):
            return True
        prefix = f"{name}:"
        try:
            with os.scandir(self.path / "cur") as entries:
                return any(e.name == name or e.name.startswith(prefix) for e in entries)
        except FileNotFoundError:
            return False

    def _make_folders(self) -> None:
        for sub in ("tmp", "new", "cur"):
            (self.path / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        self._folders_made = True

    def _deliver(self, name: str, data: bytes) -> None:
        if not self._folders_made:
            self._make_folders()
        try:
            self._store(name, data)
        except FileNotFoundError:
            self._make_folders()  # someone removed the outbox while the service ran
            self._store(name, data)

    def _store(self, name: str, data: bytes) -> None:
        if self._delivered(name):
            log.info("maildir: %s already delivered, not storing it twice", name)
            return
        tmp = self.path / "tmp" / f"{name}.{os.getpid()}.{os.urandom(4).hex()}"
        try:
            # 0600 whatever the umask: a result mail may carry a password or a password link.
            with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                # link() refuses to replace an existing name: of two concurrent sends, one wins.
                os.link(tmp, self.path / "new" / name)
            except FileExistsError:
                log.info("maildir: %s delivered concurrently, not storing it twice", name)
                return
            except OSError:
                # Some filesystems (FAT, certain network shares) have no hard links.
                os.replace(tmp, self.path / "new" / name)
            _fsync_dir(self.path / "new")
        finally:
            tmp.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    # The rename/link is only durable once the directory entry itself is on disk.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SmtpMailSender:
    """Delivers through an SMTP relay (smtplib in a worker thread); at-least-once, the job retries."""

    def __init__(
        self,
        host: str,
        port: int = 25,
        *,
        starttls: bool = False,
        username: str = "",
        password: str = "",
        timeout: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
        envelope_from: str = "",
        tokens: TokenSource | None = None,
        mechanism: str = "xoauth2",
    ) -> None:
        self.host = host
        self.port = port
        self.starttls = starttls
        self.username = username
        self.password = password
        self.timeout = timeout
        self.tls_context = tls_context
        self.envelope_from = envelope_from
        self.tokens = tokens  # OAuth2 (Microsoft 365, Google): AUTH with a bearer token instead of a password
        self.mechanism = mechanism  # "xoauth2" or "oauthbearer"

    async def send(self, message: OutgoingMessage) -> None:
        """Hand one message to the relay; raises MailSendError (with `permanent`) when it refuses."""
        data = to_mime(message)
        sender = self.envelope_from or _bare_address(message.sender)
        recipients = [_bare_address(r) for r in message.to]
        await asyncio.to_thread(self._send_sync, sender, recipients, data)

    def login(self, smtp: smtplib.SMTP) -> None:
        """Sign in on an open (and, if configured, STARTTLS-secured) session: a bearer token with OAuth2,
        else the password when a user name is set; `edudesk mail check` uses it too."""
        if self.tokens is not None:
            oauth2_login(smtp, self.tokens, self.mechanism, self.host, self.port)
        elif self.username:
            _login(smtp, self.username, self.password)

    def _send_sync(self, sender: str, recipients: list[str], data: bytes) -> None:
        where = f"{self.host}:{self.port}"
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                smtp.ehlo()
                if self.starttls:
                    smtp.starttls(context=self.tls_context or ssl.create_default_context())
                    smtp.ehlo()
                self.login(smtp)
                refused = smtp.sendmail(sender, recipients, data)
        except MailAuthError as exc:
            # The words say what to fix (the app's SMTP.SendAsApp, the delegation, the secret).
            raise MailSendError(exc.message, auth=True) from exc
        except smtplib.SMTPNotSupportedError as exc:
            # STARTTLS or AUTH configured but not offered: a configuration problem, not a passing one.
            raise MailSendError(f"Máy chủ SMTP {where} không hỗ trợ: {exc}", permanent=True) from exc
        except smtplib.SMTPAuthenticationError as exc:
            msg = f"Máy chủ SMTP {where} từ chối đăng nhập: {_reply(exc)}"
            raise MailSendError(msg, auth=True) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            raise MailSendError(
                f"Máy chủ SMTP {where} từ chối người nhận: {_refused(exc.recipients)}",
                permanent=_all_permanent(exc.recipients),
            ) from exc
        except smtplib.SMTPResponseException as exc:
            raise MailSendError(
                f"Máy chủ SMTP {where} từ chối thư: {_reply(exc)}", permanent=500 <= exc.smtp_code < 600
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:  # includes timeouts and TLS errors
            raise MailSendError(f"Không kết nối được máy chủ SMTP {where}: {exc}") from exc
        if refused:
            # The others already have the mail, so a retry would double it for them: report, don't retry.
            raise MailSendError(
                f"Máy chủ SMTP {where} từ chối một số người nhận: {_refused(refused)}", permanent=True
            )


def _login(smtp: smtplib.SMTP, username: str, password: str) -> None:
    if (username + password).isascii():
        smtp.login(username, password)
        return
    # smtplib encodes credentials as ASCII; AUTH PLAIN is defined over UTF-8 (RFC 4616), so a
    # Vietnamese password is sent that way rather than failing with UnicodeEncodeError.
    if "plain" not in smtp.esmtp_features.get("auth", "").lower().split():
        raise smtplib.SMTPNotSupportedError("AUTH PLAIN (cần cho mật khẩu có ký tự ngoài ASCII)")
    token = base64.b64encode(f"\0{username}\0{password}".encode()).decode("ascii")
    code, resp = smtp.docmd("AUTH", f"PLAIN {token}")
    if code != 235:
        raise smtplib.SMTPAuthenticationError(code, resp)


def oauth2_login(smtp: smtplib.SMTP, tokens: TokenSource, mechanism: str, host: str = "", port: int = 0) -> None:
    """AUTH XOAUTH2 (or OAUTHBEARER) with the mailbox's token; a refused token is renewed and tried once
    more, a second refusal raises MailAuthError saying what to fix."""
    name = mechanism.upper()
    if name not in smtp.esmtp_features.get("auth", "").upper().split():
        raise smtplib.SMTPNotSupportedError(f"AUTH {name}")
    for attempt in (1, 2):
        initial = sasl_string(mechanism, tokens.user, tokens.token(), host, port)

        def respond(challenge: bytes | None = None, initial: str = initial) -> str:
            # A refusing server sends its error as a challenge and waits for an empty answer before 535.
            return initial if challenge is None else ""

        try:
            smtp.auth(name, respond, initial_response_ok=True)
            return
        except smtplib.SMTPAuthenticationError as exc:
            if attempt == 2:
                raise tokens.refused("SMTP", _reply(exc)) from None
            log.info("SMTP %s: token refused (%s), fetching a new one", tokens.user, _reply(exc))
            tokens.invalidate()


def _reply(exc: smtplib.SMTPResponseException) -> str:
    text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
    return f"{exc.smtp_code} {text}"


def _refused(recipients: dict[str, tuple[int, bytes]]) -> str:
    parts = (f"{rcpt} ({code} {msg.decode('utf-8', 'replace')})" for rcpt, (code, msg) in recipients.items())
    return "; ".join(parts)


def _all_permanent(recipients: dict[str, tuple[int, bytes]]) -> bool:
    return all(500 <= code < 600 for code, _ in recipients.values())


def make_mail_sender(settings: Settings) -> MailSender:
    """Pick the outgoing transport from `[outgoing] transport`: "maildir" (default) or "smtp"."""
    out = settings.outgoing
    if out.transport == "maildir":
        return MaildirMailSender(settings.path(out.maildir))
    if out.transport == "smtp":
        return SmtpMailSender(
            out.smtp_host,
            out.smtp_port,
            starttls=out.smtp_starttls,
            username=out.smtp_username,
            password=settings.secret(out.smtp_password_env),
            tokens=make_token_source(settings, "smtp"),
            mechanism=settings.mail_oauth.mechanism,
        )
    raise ConfigError(
        f'outgoing.transport = "{out.transport}" không hợp lệ (chọn "maildir" hoặc "smtp")',
        code="config_value",
    )
