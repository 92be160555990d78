"""The `send_mail` job: render a queued mail, apply the automatic-reply rate cap, hand it to the transport."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from core.config import Settings
from core.jobs import PermanentJobError
from core.models import AuditEvent, Job, OutgoingMail
from core.ports import Clock, MailSender
from mailer.outbox import MailSendError
from mailer.render import build_message

log = logging.getLogger(__name__)


def _bracket(mid: str) -> str:
    return mid if not mid or mid.startswith("<") else f"<{mid}>"


class MailDelivery:
    """Job handler for `send_mail`; one automatic answer stream per sender is capped (loop breaker)."""

    def __init__(self, settings: Settings, clock: Clock, sender: MailSender, templates_dir: Path) -> None:
        self.settings = settings
        self.clock = clock
        self.sender = sender
        self.templates_dir = templates_dir

    async def _over_cap(self, mail: OutgoingMail) -> bool:
        out = self.settings.outgoing
        since = self.clock.now() - timedelta(minutes=out.auto_reply_window_minutes)
        sent = await OutgoingMail.filter(recipient=mail.recipient, automatic=True, state="sent",
                                         sent_at__gte=since).count()
        return sent >= out.auto_reply_limit

    async def __call__(self, job: Job) -> None:
        """Send one queued mail (done once: a sent mail is never sent again by a re-run job)."""
        mail = await OutgoingMail.get_or_none(id=job.payload.get("outgoing_id"))
        if mail is None:
            raise PermanentJobError("outgoing mail row is gone")
        if mail.state != "pending":
            return
        now = self.clock.now()
        if mail.automatic and await self._over_cap(mail):
            await OutgoingMail.filter(id=mail.id).update(state="suppressed", detail="rate cap")
            await AuditEvent.create(at=now, actor="system", action="auto_reply_suppressed",
                                    request_id=mail.request_id, detail={"template": mail.template,
                                                                        "recipient": mail.recipient})
            log.warning("automatic mail to %s suppressed by the rate cap", mail.recipient)
            return
        context = dict(job.payload.get("context") or {})
        message = build_message(
            mail.template, lang=context.get("lang", self.settings.general.language), context=context,
            templates_dir=self.templates_dir, sender=self.settings.outgoing.from_address,
            sender_name=self.settings.outgoing.from_name, to=mail.recipient,
            message_id=_bracket(mail.message_id), in_reply_to=_bracket(job.payload.get("in_reply_to", "")),
            references=[_bracket(r) for r in job.payload.get("references", [])], date=now,
            display_timezone=self.settings.general.timezone,
        )
        try:
            await self.sender.send(message)
        except MailSendError as exc:
            if exc.permanent:
                await OutgoingMail.filter(id=mail.id).update(state="dead", detail=exc.message[:2000])
                raise PermanentJobError(exc.message) from exc
            raise
        await OutgoingMail.filter(id=mail.id).update(state="sent", sent_at=now)
        await AuditEvent.create(at=now, actor="system", action="mail_sent", request_id=mail.request_id,
                                detail={"template": mail.template, "recipient": mail.recipient,
                                        "message_id": mail.message_id})
