"""Spam: mail the upstream filter marked, or mail whose domain's DMARC policy says reject and that failed it.

Such mail is finished without an answer (an answer to a forged sender is backscatter) and without a card. A
DMARC failure counts only from a domain with no history here: a school that misconfigured its DKIM for a day
must still reach the office (its mail is then flagged by the sender checks, not dropped).
"""

from __future__ import annotations

from edudesk.core.config import Settings
from edudesk.core.intake.domain import IncomingMail
from edudesk.core.intake.models import InboundMail
from edudesk.core.intake.sender import dmarc_failure, sender_domain
from edudesk.core.requests.models import OutgoingMail, Request

SPAM_FLAG = "spam_flag"  # the upstream filter (SpamAssassin, rspamd, the provider) said spam
DMARC_REJECT = "dmarc_reject"  # DMARC failed, the domain asks receivers to reject, and we never heard from it


def flagged_upstream(mail: IncomingMail) -> bool:
    """True when an upstream filter marked the mail: `X-Spam-Flag: YES` or `X-Spam-Status: Yes, ...`."""
    flags = [v.strip().lower() for v in mail.header("x-spam-flag").splitlines()]
    statuses = [v.strip().lower() for v in mail.header("x-spam-status").splitlines()]
    return any(v.startswith("yes") for v in flags) or any(v.startswith("yes") for v in statuses)


def dmarc_rejects(mail: IncomingMail, settings: Settings) -> bool:
    """True when the Authentication-Results (trusted, else topmost) say DMARC failed under a reject policy."""
    failed, policy = dmarc_failure(mail, settings)
    return failed and policy == "reject"


async def has_history(domain: str, mail_id: int) -> bool:
    """True when the domain wrote to us before (a request, a stored mail) or we wrote to it."""
    if not domain:
        return False
    suffix = "@" + domain
    return (await Request.filter(sender__iendswith=suffix).exists()
            or await OutgoingMail.filter(recipient__iendswith=suffix).exists()
            or await InboundMail.filter(envelope_from__iendswith=suffix, state="processed")
            .exclude(id=mail_id).exists())


async def spam_reason(mail: IncomingMail, settings: Settings, mail_id: int) -> str:
    """Why the mail is spam (`SPAM_FLAG`, `DMARC_REJECT`), or "" when it is not."""
    if flagged_upstream(mail):
        return SPAM_FLAG
    if dmarc_rejects(mail, settings) and not await has_history(sender_domain(mail.from_addr), mail_id):
        return DMARC_REJECT
    return ""
