"""The chat side of the job queue: post and edit request cards, post notices, on every chat surface."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, timedelta
from typing import TypeVar

from bot.cards import RequestView, build_card, load_view
from core.config import Settings
from core.jobs import Handlers, JobKind, JobQueue, PermanentJobError, RetryLater
from core.models import ChatCard, Job, Staff
from core.people.staff import Role, actor_for_staff
from core.ports import Button, Card, ChatBusy, ChatDown, ChatPort, ChatRefused, Clock

log = logging.getLogger(__name__)
T = TypeVar("T")
CLAIM = "?"  # message_ref of a card being posted (a claim token, not yet the platform's id)
CLAIM_TIMEOUT = timedelta(minutes=2)
REFUSED = "refused"  # message_ref of a card its person's chat refused (a blocked Zalo bot)


def _account(staff: Staff, surface: str) -> str:
    """The person's account on a chat surface ("" when not linked)."""
    if surface == "telegram":
        return str(staff.telegram_id) if staff.telegram_id else ""
    if surface == "zalo":
        return str(staff.zalo_id or "")
    return ""


class ChatHub:
    """Job handlers `refresh_cards` and `chat_notice` over the registered chat ports (Telegram, Zalo).

    The web console needs none of this: it renders cards from the database on every view.
    """

    def __init__(self, settings: Settings, clock: Clock,
                 health: Callable[[str, bool, str], Awaitable[None]] | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.health = health  # the ledger's report_health: a chat that keeps failing is told by mail
        self.queue: JobQueue | None = None  # for notices that go by e-mail (set by the App)
        self._reported_ok: set[str] = set()
        self.ports: dict[str, ChatPort] = {}
        self.chats: dict[str, dict[str, str]] = {}  # surface -> audience -> chat id
        self._locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)

    def add(self, port: ChatPort, chats: dict[str, str]) -> None:
        """Register a chat surface with its chat ids per audience ("office", "technical", "head")."""
        self.ports[port.surface] = port
        self.chats[port.surface] = {k: v for k, v in chats.items() if v}

    async def _chat_for(self, surface: str, audience: str) -> str:
        if audience.startswith("staff:"):
            staff = await Staff.get_or_none(id=int(audience.removeprefix("staff:")))
            if staff is None or not staff.active or self.preferred(staff) != surface:
                return ""
            return _account(staff, surface)
        return self.chats.get(surface, {}).get(audience, "")

    def preferred(self, staff: Staff) -> str:
        """Where a person's own notices go: their choice when that chat is linked and running, else the first
        linked chat (Telegram, then Zalo), else "email"."""
        linked = [s for s in self.ports if _account(staff, s)]
        if staff.notify_via == "email":
            return "email"
        if staff.notify_via in linked:
            return staff.notify_via
        return next((s for s in ("telegram", "zalo") if s in linked), "email")

    async def _chats_for(self, surface: str, audience: str) -> list[str]:
        """The chats of an audience on a surface. Zalo has no groups: "office", "technical" and "head" are the
        people of that role whose notices go to Zalo."""
        if surface != "zalo" or audience.startswith("staff:"):
            chat = await self._chat_for(surface, audience)
            return [chat] if chat else []
        if audience not in ("office", "technical", "head"):
            return []
        chats = []
        for staff in await Staff.filter(active=True, zalo_id__isnull=False).order_by("id"):
            actor = await actor_for_staff(staff.id, self.settings)  # roles from the table and from config
            if actor is not None and Role(audience) in actor.roles and self.preferred(staff) == "zalo":
                chats.append(str(staff.zalo_id))
        return chats

    async def _healthy(self, surface: str, ok: bool, detail: str = "") -> None:
        # Every failure is written; a success only the first time after start or after a failure (the
        # stored row may say "failing" from before a restart), not one row update per message sent.
        if self.health is not None and (not ok or surface not in self._reported_ok):
            await self.health(surface, ok, detail)
        (self._reported_ok.add if ok else self._reported_ok.discard)(surface)

    async def _call(self, surface: str, audience: str, call: Awaitable[T]) -> T:
        """One platform call, with its outcome for the channel's health (only a channel-wide failure,
        or the bot refused by a staff group, counts: one person not having started the bot does not)."""
        try:
            result = await call
        except ChatBusy as exc:
            raise RetryLater(exc.wait) from None
        except ChatDown as exc:
            await self._healthy(surface, False, str(exc))
            raise
        except ChatRefused as exc:
            if audience.startswith("staff:") or surface == "zalo":  # on Zalo every chat is one person's
                raise PermanentJobError(f"{audience} refuses the bot (never started it?): {exc}") from None
            await self._healthy(surface, False, f"{audience} chat refuses the bot: {exc}")
            raise
        await self._healthy(surface, True)
        return result

    def handlers(self) -> Handlers:
        """The jobs of the chat side: bring a request's cards up to date, post a notice."""
        return {JobKind.REFRESH_CARDS: self.refresh_cards, JobKind.CHAT_NOTICE: self.notice}

    async def refresh_cards(self, job: Job) -> None:
        """Edit every posted card of a request to its current state; post it where it is now worked on."""
        try:
            await self._refresh(int(job.payload["request_id"]), job.payload.get("post_to", []))
        except ChatBusy as exc:
            raise RetryLater(exc.wait) from None  # done parts are recorded; the rest goes when the chat is free

    async def _refresh(self, request_id: int, post_to: list[str]) -> None:
        if not self.ports:
            return
        async with self._locks[request_id]:
            view = await load_view(request_id)
            for surface, port in self.ports.items():
                await self._refresh_surface(surface, port, view, post_to)

    async def _refresh_surface(self, surface: str, port: ChatPort, view: RequestView, post_to: list[str]) -> None:
        request_id, version, now = view.request.id, view.request.version, self.clock.now()
        cards = await ChatCard.filter(surface=surface, request_id=request_id)
        in_flight: set[str] = set()  # chats where another worker is posting the card right now
        for cc in cards:
            if cc.message_ref.startswith(CLAIM):
                in_flight.add(cc.chat)
            elif cc.version < version and cc.message_ref != REFUSED:
                if surface == "zalo" and cc.chat not in await self._chats_for(surface, cc.audience):
                    # Left the role, was disabled, chose another channel, or the account moved to someone
                    # else: a Zalo "edit" is a new message with the applicant's data, so none goes.
                    await ChatCard.filter(id=cc.id).update(version=version, message_ref=REFUSED, updated_at=now)
                    continue
                try:
                    await self._call(surface, cc.audience, port.edit_card(
                        cc.chat, cc.message_ref, build_card(view, cc.audience, self.settings, now)))
                except PermanentJobError as exc:  # one Zalo person blocked the bot: the others still get theirs
                    log.warning("card %s not updated in %s chat %s: %s", request_id, surface, cc.chat, exc)
                await ChatCard.filter(id=cc.id).update(version=version, updated_at=now)
        by_chat = {cc.chat: cc for cc in cards}
        # Claimed rows are revisited too: a claim left by a worker that died is taken over and posted.
        audiences = list(dict.fromkeys([*post_to, *(cc.audience for cc in cards if cc.chat in in_flight)]))
        for audience, chat in [(a, c) for a in audiences for c in await self._chats_for(surface, a)]:
            existing = by_chat.get(chat)
            if surface == "zalo" and existing is not None and existing.audience != audience \
                    and not existing.message_ref.startswith(CLAIM):
                # One person in two roles (office, then technical): the new role's card, with its actions,
                # goes as a new message; the row now follows that audience.
                await ChatCard.filter(id=existing.id, message_ref=existing.message_ref).delete()
                existing = None
            token = await self._claim(surface, chat, request_id, audience, version, existing)
            if token is None:
                continue  # posted already, or in flight (noted above)
            try:
                ref = await self._call(surface, audience, port.post_card(
                    chat, build_card(view, audience, self.settings, now)))
            except PermanentJobError as exc:  # that one person refuses the bot (Zalo): by e-mail instead
                log.warning("card %s not posted to %s chat %s: %s", request_id, surface, chat, exc)
                ref = REFUSED
                owner = await Staff.get_or_none(zalo_id=chat) if surface == "zalo" else None
                if owner is not None and owner.email:
                    await self._mail_card(f"card_mail:{request_id}:{owner.id}:{version}", owner,
                                          build_card(view, audience, self.settings, now), surface)
            except BaseException:
                # Not posted (busy chat, network): give the claim back so the retry posts it.
                await ChatCard.filter(surface=surface, chat=chat, request_id=request_id, message_ref=token).delete()
                raise
            await ChatCard.filter(surface=surface, chat=chat, request_id=request_id, message_ref=token).update(
                message_ref=ref, updated_at=self.clock.now())
            in_flight.discard(chat)  # taken over from a worker that died, and posted now
        if in_flight:
            # Not done until that card exists and shows this version; the job frees its worker meanwhile
            # (a claim whose worker died is taken over after CLAIM_TIMEOUT).
            raise RetryLater(2.0)

    async def _claim(self, surface: str, chat: str, request_id: int, audience: str, version: int,
                     existing: ChatCard | None) -> str | None:
        """Reserve the right to post a request's card in a chat; None when someone has it already.

        The reservation is the card's own row (unique per chat and request) holding a claim token until
        the platform's message id replaces it: two workers, or two replicas, cannot both post it. A claim
        older than CLAIM_TIMEOUT belonged to a worker that died before recording what it posted: it is
        taken over and the card posted again (at least once, never silently lost).
        """
        now = self.clock.now()
        token = f"{CLAIM}{uuid.uuid4().hex}"
        if existing is None:
            await ChatCard.bulk_create([ChatCard(surface=surface, chat=chat, request_id=request_id, message_ref=token,
                                                 audience=audience, version=version, updated_at=now)],
                                       ignore_conflicts=True)
            row = await ChatCard.get(surface=surface, chat=chat, request_id=request_id)
            return token if row.message_ref == token else None
        claimed_at = existing.updated_at if existing.updated_at.tzinfo else existing.updated_at.replace(tzinfo=UTC)
        if not existing.message_ref.startswith(CLAIM) or now - claimed_at < CLAIM_TIMEOUT:
            return None
        won = await ChatCard.filter(id=existing.id, message_ref=existing.message_ref).update(
            message_ref=token, updated_at=now, version=version)
        return token if won else None

    async def notice(self, job: Job) -> None:
        """Post a notice (reminder, escalation, assignment) to an audience's chat on every surface."""
        payload = job.payload
        rows = tuple(tuple(Button(**b) for b in row) for row in payload.get("buttons") or [])
        card = Card(payload["text"], rows)
        audience = payload["audience"]
        person = await self._person(audience)
        if person is not None and self.preferred(person) == "email":
            await self._mail_notice(job, person, card, "")  # their choice: no "chat failed" line
            return
        done = job.payload.get("done") or []  # "surface:chat" posted already (a retry posts only the others)
        for surface, port in self.ports.items():
            chats = await self._chats_for(surface, audience)
            if not chats:
                log.info("no %s chat for %s; notice kept in the audit trail only", surface, audience)
            for chat in chats:
                if f"{surface}:{chat}" in done:
                    continue
                try:
                    await self._call(surface, audience, port.post_card(chat, card))
                except (ChatRefused, PermanentJobError, ChatDown) as exc:
                    retry = isinstance(exc, ChatDown) and job.attempts < self.settings.jobs.max_attempts
                    owner = person or (await Staff.get_or_none(zalo_id=chat) if surface == "zalo" else None)
                    if retry or owner is None:
                        raise  # a group chat, or the channel down for a while: the job retries
                    try:
                        await self._mail_notice(job, owner, card, surface)  # the person's own chat failed
                    except PermanentJobError:
                        if person is not None:
                            raise
                        log.warning("notice %s reached neither chat nor mail of staff %s", job.key, owner.id)
                done.append(f"{surface}:{chat}")
                await Job.filter(id=job.id).update(payload={**job.payload, "done": done})

    async def _person(self, audience: str) -> Staff | None:
        if not audience.startswith("staff:"):
            return None
        return await Staff.get_or_none(id=int(audience.removeprefix("staff:")), active=True)

    async def _mail_notice(self, job: Job, staff: Staff, card: Card, surface: str) -> None:
        """A person's notice by e-mail: they chose it, or their chat refused the message."""
        await self._mail_card(f"notice_mail:{job.key}:{staff.id}", staff, card, surface)

    async def _mail_card(self, key: str, staff: Staff, card: Card, surface: str) -> None:
        """A card or notice as a mail to one staff member (`surface`: the chat that failed, "" if none)."""
        from tortoise.transactions import in_transaction

        from bot.zalo.render import plain
        from core.requests.mailqueue import mail_context, queue_mail

        if not staff.email or self.queue is None:
            raise PermanentJobError(f"staff:{staff.id} has neither a working chat nor an e-mail address")
        text = plain(card.text).strip()
        links = [b.url for row in card.buttons for b in row if b.url]
        context = {**mail_context(self.settings, staff.name), "text": text, "link": links[0] if links else "",
                   "subject": text.splitlines()[0][:120] if text else "Thông báo", "surface": surface.capitalize()}
        key = key[:300]
        async with in_transaction() as conn:
            await queue_mail(conn, self.queue, self.clock, self.settings, key=key,
                             template="chat_notice", recipient=staff.email, context=context)
        self.queue.wake()
