"""The core's ports: small protocols the adapters in mailer/, bot/ and core/provisioning implement."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from edudesk.core.chats.actions import ButtonAction
from edudesk.core.chats.surfaces import Capabilities, Surface
from edudesk.core.intake.domain import ExtractedRequest, IncomingMail, Kind


class Clock(Protocol):
    """Where the core gets the time from; tests move a `FakeClock` instead of sleeping."""

    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class OnProgress(Protocol):
    """Told how far a long piece of work has got (the command line draws a bar from it; core draws nothing)."""

    def __call__(self, done: int, total: int) -> None:
        """`done` of `total` steps are finished."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """The current time in UTC."""
        return datetime.now(UTC)


class FakeClock:
    """A clock that only moves when told to (for deadline tests)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 9, 1, 8, 0, tzinfo=UTC)

    def now(self) -> datetime:
        """The frozen time."""
        return self._now

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward."""
        self._now += delta


@dataclass(frozen=True)
class OutgoingMessage:
    """A rendered mail ready to hand to a transport; `message_id` makes re-sends recognisable."""

    message_id: str
    sender: str
    to: tuple[str, ...]
    subject: str
    text: str
    html: str = ""
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    attachments: tuple[tuple[str, str, bytes], ...] = ()  # (file name, MIME type, data)


class MailSender(Protocol):
    """Delivers outgoing mail (SMTP relay in production, a maildir sink in the embedded default)."""

    async def send(self, message: OutgoingMessage) -> None:
        """Deliver one message; re-sending the same `message_id` must not deliver twice where the
        transport can tell (the maildir sink can; an SMTP relay is at-least-once)."""
        ...


@dataclass(frozen=True)
class Button:
    """One button of a card: an action on a request (ids only; the channel packs it, e.g. CallbackData)."""

    label: str
    action: ButtonAction  # stored and packed as its value
    request_id: int
    version: int = 0  # the request version the card showed: a tap on an older card is stale
    arg: int = 0  # a preset index, a page or a staff id
    url: str = ""  # a link button instead (e.g. download the rows from the web console)


@dataclass(frozen=True)
class Card:
    """A platform-neutral card: text (Telegram's HTML subset, also valid web HTML) and rows of buttons."""

    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()


class ChatBusy(Exception):
    """A chat cannot take another message for `wait` seconds (rate limits): the job retries later."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"chat busy for {wait:.2f} s")
        self.wait = wait


class ChatDown(Exception):
    """The chat platform cannot be reached or refuses the bot as a whole (network, 5xx, revoked token)."""


class ChatRefused(Exception):
    """One chat refuses the bot: the person blocked it or never started it, or it was removed from a group."""


class ChatPort(Protocol):
    """Posts cards and notices in staff chats (Telegram, Zalo); the web console reads the database.

    The chat hub (core/chats/hub.py) decides who gets what from `capabilities` alone, never from `surface`.
    """

    surface: Surface
    capabilities: Capabilities

    async def post_card(self, chat: str, card: Card) -> str:
        """Post a card; returns the platform's message reference."""
        ...

    async def edit_card(self, chat: str, ref: str, card: Card) -> None:
        """Replace a posted card's text and buttons in place (called only when `capabilities.edit_in_place`)."""
        ...


class ProvisionError(Exception):
    """The directory refused a change; `permanent` ones go back to technical staff at once.

    `retry_after` (seconds) is the backend's own hint (Retry-After, a quota window) for transient ones.
    """

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after


class AddressTaken(ProvisionError):
    """The address is held by someone else (made outside edudesk, or in a soft-delete window).

    The provisioning job then takes the next free suffix; it is never an error shown to staff by itself.
    """

    def __init__(self, address: str, detail: str = "") -> None:
        super().__init__(f"Địa chỉ {address} đã có người dùng{': ' + detail if detail else ''}.", permanent=True)
        self.address = address


@dataclass(frozen=True)
class AccountSpec:
    """An account to create in the school's directory.

    `key` is the idempotency key (one per request and person): a backend that can store it with the
    entry does, and an entry found under the same key is this very account, made by an earlier run.
    """

    address: str
    full_name: str
    population: str
    person_id: str = ""
    given_name: str = ""
    family_name: str = ""
    request_id: int | None = None  # the request asking for it (a re-run of that request may link it)
    key: str = ""
    force_change: bool = True  # ask for a new password at first sign-in, where the backend can


@dataclass(frozen=True)
class DirectoryEntry:
    """What a backend holds under an address.

    `state` is "active", "suspended", or "deleted" (soft-deleted, the address still held: Microsoft's
    30 days, Google's undelete window). `key` and `person_id` are what edudesk stored with it, if anything.
    """

    address: str
    state: str
    key: str = ""
    person_id: str = ""
    backend_id: str = ""
    full_name: str = ""

    def owned_by(self, key: str, person_id: str) -> bool:
        """Whether this entry is the account of that request key or that person (safe to link)."""
        return bool(key and self.key == key) or bool(person_id and self.person_id == person_id)


class Provisioner(Protocol):
    """Creates, resets, suspends and removes accounts in a directory (local, Dovecot, LDAP/AD, Google,
    Microsoft 365, mailcow).

    Every call is idempotent: creating an account that exists under the same key or for the same person
    links it and sets the password; an address held by anyone else raises `AddressTaken`; suspending or
    deleting an absent account answers "absent". Passwords are never logged.
    """

    name: str

    async def lookup(self, address: str) -> DirectoryEntry | None:
        """The entry under this address (also a soft-deleted one), or None when the address is free."""
        ...

    async def create(self, spec: AccountSpec, password: str) -> str:
        """Create (or link) the account; returns "created" or "linked"; raises AddressTaken."""
        ...

    async def reset_password(self, address: str, password: str, *, force_change: bool = True) -> None:
        """Set a new password (and re-enable the account); ProvisionError(permanent=True) when absent."""
        ...

    async def suspend(self, address: str) -> str:
        """Disable sign-in, keep the data; returns "suspended" or "absent"."""
        ...

    async def restore(self, address: str) -> str:
        """Allow sign-in again on a suspended account (kept during its grace period); "restored" or "absent"."""
        ...

    async def delete(self, address: str) -> str:
        """Remove the account; returns "deleted" or "absent"."""
        ...

    async def close(self) -> None:
        """Release connections (HTTP sessions, LDAP binds)."""
        ...


@dataclass(frozen=True)
class StoreResult:
    """What the intake ledger did with a raw mail: its id, and whether it had it already."""

    mail_id: int
    duplicate: bool


class IntakeSink(Protocol):
    """What an intake channel (SMTP listener, IMAP watcher) hands mail to: the `receive_mail` service.

    `store` commits the raw message durably (and the job that processes it) before it returns; only
    then may the channel acknowledge (SMTP 250, IMAP flag/move).
    """

    async def store(
        self,
        raw: bytes,
        *,
        source: str,
        source_key: str | None = None,
        envelope_from: str = "",
        envelope_to: tuple[str, ...] = (),
        oversize: int | None = None,
    ) -> StoreResult:
        """Store a raw mail (idempotent on source_key, Message-ID or content hash). With `oversize`
        set, `raw` holds only the headers of a mail of that many bytes that was not fetched."""
        ...

    async def backlog(self) -> int:
        """How many stored mails wait to be processed (the listener slows senders down past a limit)."""
        ...


@dataclass(frozen=True)
class Analysis:
    """What the analyser read from a raw mail: the parsed mail, whether it is automatic, the form."""

    mail: IncomingMail
    automatic: Kind | None
    extracted: ExtractedRequest | None  # None for automatic mail (not worth reading)


class AnalysisTimeout(Exception):
    """The analyser gave up on a mail after the per-message time limit (it is quarantined)."""


class MailAnalyser(Protocol):
    """Parses and reads a raw mail in isolation (a process pool with a time and memory limit)."""

    async def analyse(self, raw: bytes) -> Analysis:
        """Parse, classify and extract; raises AnalysisTimeout when the mail takes too long."""
        ...


@dataclass(frozen=True)
class SignItem:
    """One signature to put on one record PDF, in the pre-made field of the signer's role.

    `key` is the idempotency key ("step:<id>"): a signer asked again for the same key after a crash may
    answer from what it finished before. `certify` is set on the record's first signature (DocMDP, form
    filling and signing only).
    """

    key: str
    pdf: bytes
    field: str
    certify: bool = False
    reason: str = ""
    location: str = ""
    signer_name: str = ""
    timezone: str = "Asia/Ho_Chi_Minh"  # the visible stamp's local time ([general].timezone)
    at: datetime | None = None  # the signing moment the stamp shows (the injected clock's); None = now
    level: str = "B-B"  # PAdES baseline level to reach: "B-B", "B-T", "B-LT", "B-LTA" (core/signing/pades.py)


@dataclass(frozen=True)
class SignOutcome:
    """What a signer did with a batch: the signed PDFs (item order), or a confirmation still awaited.

    A remote signer waiting for the person's phone returns `pending` (small, JSON-able state: the
    provider's transaction, the prepared digests) and `prepared` (per item, the PDF with the signature
    placeholder the digest was made over); the caller stores both durably and calls `resume` later, also
    after a restart. `refused` is the provider's or the person's no (rejected, expired): nothing signed.
    """

    signed: tuple[bytes, ...] = ()
    pending: Mapping[str, object] | None = None
    prepared: tuple[bytes, ...] = ()
    refused: str = ""


class Signer(Protocol):
    """Puts signatures into record PDFs: PKCS#12 file, PKCS#11 token/HSM, remote (CSC, VNPT SmartCA)."""

    kind: str  # "pkcs12" | "pkcs11" | "csc" | "smartca"

    async def certificate(self) -> bytes:
        """The signing certificate (DER), for the pre-flight checks and the roster name match."""
        ...

    async def sign(self, items: Sequence[SignItem]) -> SignOutcome:
        """Sign every item (one confirmation for all of them on a remote signer)."""
        ...

    async def resume(self, pending: Mapping[str, object], prepared: Sequence[bytes]) -> SignOutcome:
        """Ask again about a pending remote confirmation; local signers never return pending."""
        ...

    async def close(self) -> None:
        """Release sessions (PKCS#11 session, HTTP session, worker processes)."""
        ...


class ImapCheckpoints(Protocol):
    """Where an IMAP watcher remembers how far a mailbox has been stored (UIDVALIDITY and the last UID)."""

    async def load_checkpoint(self, key: str) -> tuple[int, int] | None:
        """(uidvalidity, last_uid) remembered for an IMAP mailbox, or None the first time."""
        ...

    async def save_checkpoint(self, key: str, uidvalidity: int, last_uid: int) -> None:
        """Remember how far an IMAP mailbox has been stored."""
        ...


class HealthReport(Protocol):
    """Where a channel (IMAP, a chat) reports whether it works; repeated failures reach staff, never silent."""

    async def report_health(self, channel: str, ok: bool, detail: str = "") -> None:
        """Record a channel's health: `ok` after a success, else a failure with what went wrong."""
        ...


@dataclass(frozen=True)
class ClassPackage:
    """What goes to the records portal for one class (core/signing/portal.py builds it; docs/records-portal.md).

    `package_id` is made from the content (the school, year, class and each PDF's SHA-256): the same package
    sent again after a lost answer carries the same id, which the portal uses to answer without storing twice.
    """

    package_id: str
    label: str  # "10A1 (2025-2026)", for messages
    manifest_json: bytes
    manifest_xml: bytes
    pdfs: tuple[tuple[str, bytes], ...]  # (file name, signed PDF), in the manifests' order
    student_codes: tuple[str, ...]  # the same order

    @property
    def size(self) -> int:
        """The bytes of the package's files (the manifests and the PDFs)."""
        return len(self.manifest_json) + len(self.manifest_xml) + sum(len(data) for _, data in self.pdfs)


@dataclass(frozen=True)
class PortalReceipt:
    """The portal's answer for one record: accepted (with its receipt number) or refused (with the reason)."""

    student_code: str
    accepted: bool
    receipt: str = ""
    answer: str = ""  # the portal's own words: the reason of a refusal, a note on an acceptance


class PortalError(Exception):
    """The portal did not take the package. `permanent`: refused as a whole (credentials, format, size), sending
    it again cannot help; otherwise (timeout, 5xx, 429) the job retries with backoff. `status` is the HTTP code
    (0 without an answer)."""

    def __init__(self, message: str, *, permanent: bool = False, status: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.status = status


class RecordsPortal(Protocol):
    """Sends issued records to the receiving portal (Cổng tiếp nhận of the education department or ministry)."""

    async def send_class(self, package: ClassPackage) -> list[PortalReceipt]:
        """Upload one class package; one receipt per record the portal answered for. Raises PortalError."""
        ...
