"""The intake filters: small named steps that `IntakePipeline.process` runs in order on one stored mail.

Each filter either finishes the mail (and returns its outcome: what `inbound_mail.outcome` says) or returns
`CONTINUE` and lets the next one look. The order is `FILTERS`, here and nowhere else:

    oversize -> unreadable -> automatic -> spam -> thread -> flood -> create_request

A filter with `decides` set runs inside the pipeline's decision (an asyncio lock, and a PostgreSQL advisory
lock), together with every filter after it: checking a sender's flood count, free addresses and open
duplicates, and saving the request, are one step. The mails waiting for a decision share one (one transaction,
one commit; each mail in a savepoint, after the ones before it: `core/intake/decide.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Protocol

from tortoise.transactions import in_transaction

from edudesk.core.intake import flood, spam
from edudesk.core.intake.domain import IncomingMail
from edudesk.core.intake.loops import classify_automatic
from edudesk.core.intake.models import InboundMail
from edudesk.core.ports import Analysis, AnalysisTimeout

if TYPE_CHECKING:
    from edudesk.core.intake.pipeline import IntakePipeline

CONTINUE: None = None  # a filter's answer when the mail goes on to the next filter


@dataclass
class MailContext:
    """One mail on its way through the filters: the ledger row, then what the filters learnt."""

    pipeline: IntakePipeline
    row: InboundMail
    raw: bytes
    analysis: Analysis | None = None  # set by `Unreadable` (the parser processes' answer)
    mail: IncomingMail | None = None  # the parsed mail, with the SMTP envelope's null sender applied
    seen: list[str] = field(default_factory=list)  # the filters that ran, in order

    def parsed(self) -> tuple[IncomingMail, Analysis]:
        """The parsed mail and its analysis (for the filters after `Unreadable`)."""
        assert self.mail is not None and self.analysis is not None, "the Unreadable filter runs first"
        return self.mail, self.analysis


class Filter(Protocol):
    """One intake step: finish the mail (return its outcome) or pass it on (return `CONTINUE`)."""

    name: ClassVar[str]
    decides: ClassVar[bool]  # runs under the pipeline's decision lock, with every filter after it

    async def run(self, ctx: MailContext) -> str | None:
        """The mail's outcome when this filter finished it, else `CONTINUE`."""
        ...


class Oversize:
    """A mail over `[smtpd].max_message_size` (only its headers were kept) is quarantined, the sender told."""

    name: ClassVar[str] = "oversize"
    decides: ClassVar[bool] = False

    async def run(self, ctx: MailContext) -> str | None:
        """Quarantine as `too_large` when the ledger kept only the headers."""
        if not ctx.row.oversize:
            return CONTINUE
        p = ctx.pipeline
        limit_mb = p.settings.smtpd.max_message_size // 2**20
        await p._quarantine(ctx.row, p._with_envelope(ctx.row, p.headers_only(ctx.raw)), "too_large", "too_large",
                            {"limit_mb": limit_mb, "size": ctx.row.oversize, "filter": self.name})
        return "too_large"


class Unreadable:
    """Analyse the mail in the parser processes; one the parser gives up on (time or memory) is quarantined."""

    name: ClassVar[str] = "unreadable"
    decides: ClassVar[bool] = False

    async def run(self, ctx: MailContext) -> str | None:
        """Parse, classify and read the forms; quarantine as `timeout` when the parser gives up."""
        p = ctx.pipeline
        try:
            ctx.analysis = await p.analyser.analyse(ctx.raw)
        except AnalysisTimeout as exc:
            await p._quarantine(ctx.row, p._with_envelope(ctx.row, p.headers_only(ctx.raw)), "timeout", "unreadable",
                                {"error": str(exc), "filter": self.name})
            return "timeout"
        ctx.mail = p._with_envelope(ctx.row, ctx.analysis.mail)
        return CONTINUE


class Automatic:
    """Bounces, auto-replies, mailing lists and our own mail are ignored (never answered)."""

    name: ClassVar[str] = "automatic"
    decides: ClassVar[bool] = False

    async def run(self, ctx: MailContext) -> str | None:
        """Finish as `ignored` with the kind of automatic mail as the outcome."""
        mail, analysis = ctx.parsed()
        automatic = analysis.automatic
        if automatic is None and mail is not analysis.mail:
            automatic = classify_automatic(mail, ctx.pipeline.own_addresses)  # a DSN subject from <> is a bounce
        if automatic is None:
            return CONTINUE
        await ctx.pipeline._finish(ctx.row, "ignored", automatic.value, mail, detail={
            "from": mail.from_addr, "subject": mail.subject[:200], "filter": self.name})
        return automatic.value


class Spam:
    """Mail an upstream filter marked as spam, or a DMARC reject from an unknown domain: finished silently
    (`ignored`, outcome `spam`): no answer (backscatter), no card, one audit entry."""

    name: ClassVar[str] = "spam"
    decides: ClassVar[bool] = False

    async def run(self, ctx: MailContext) -> str | None:
        """Finish as `spam` when `core/intake/spam.py` says so."""
        mail, _ = ctx.parsed()
        reason = await spam.spam_reason(mail, ctx.pipeline.settings, ctx.row.id)
        if not reason:
            return CONTINUE
        await ctx.pipeline._finish(ctx.row, "ignored", "spam", mail, detail={
            "from": mail.from_addr, "subject": mail.subject[:200], "spam": reason, "filter": self.name})
        return "spam"


class Thread:
    """A reply (by In-Reply-To/References, or the requester's own subject number) joins its request."""

    name: ClassVar[str] = "thread"
    decides: ClassVar[bool] = False  # `_attach_reply` takes the decision itself, around each attempt

    async def run(self, ctx: MailContext) -> str | None:
        """Attach the reply (`reply` outcome) when the mail belongs to a request."""
        mail, analysis = ctx.parsed()
        request = await ctx.pipeline._find_thread(mail)
        if request is None:
            return CONTINUE
        await ctx.pipeline._attach_reply(ctx.row, mail, request, analysis.extracted)
        return "reply"


class Flood:
    """Past `[intake].flood_limit` requests in the window, a sender's new mails are parked, not made requests."""

    name: ClassVar[str] = "flood"
    decides: ClassVar[bool] = True  # counted and parked inside the decision: two mails at once see each other

    async def run(self, ctx: MailContext) -> str | None:
        """Park the mail (`flood` outcome) when its sender is over the limit."""
        mail, _ = ctx.parsed()
        p = ctx.pipeline
        now = p.clock.now()
        if not await flood.over_limit(mail, p.settings, now):
            return CONTINUE
        async with in_transaction() as conn:
            await flood.park(conn, ctx.row.id, mail, p.settings, now)
        return flood.FLOOD_OUTCOME


class CreateRequest:
    """A new request: checked (registry, accounts, duplicates, sender, addresses) and saved with its people,
    audit entry, cards and acknowledgement in one transaction."""

    name: ClassVar[str] = "create_request"
    decides: ClassVar[bool] = True

    async def run(self, ctx: MailContext) -> str | None:
        """Create the request (`request_created` outcome); every mail that got this far becomes one."""
        mail, analysis = ctx.parsed()
        assert analysis.extracted is not None, "the analyser reads a form (or none) for every non-automatic mail"
        await ctx.pipeline._check_and_create(ctx.row, mail, analysis.extracted)
        return "request_created"


FILTERS: tuple[Filter, ...] = (Oversize(), Unreadable(), Automatic(), Spam(), Thread(), Flood(), CreateRequest())
