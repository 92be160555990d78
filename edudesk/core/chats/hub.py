"""The chat side of the job queue: post and update request cards, post notices, on every registered chat port.

Who gets what is decided from each port's `Capabilities`, never from its name:
- groups: an audience ("office", "technical", "head") is one group chat, from the ids given to `add`;
  without groups every chat is one person's, and an audience is the active people of that role whose own
  notices go to that surface (`preferred`);
- edit in place: a changed card is edited; without, a card that still asks something goes again whole (fresh
  commands and links), any other change as a short update line;
- text limit and links: a card longer than the chat takes is cut at a line, with a link to the web console;
- a chat that refuses the bot: in a group it counts against the channel's health and the job retries; a
  person's own chat refusing is that person's matter (the card or notice goes by e-mail, the job goes on).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from edudesk.core.chats.accounts import account, linked_staff, staff_by_account
from edudesk.core.chats.actions import NAVIGATION, ButtonAction
from edudesk.core.chats.mail import mail_card
from edudesk.core.chats.models import ChatCard
from edudesk.core.chats.surfaces import NOTIFY_EMAIL, Surface
from edudesk.core.chats.text import cut, update_line
from edudesk.core.chats.view import RequestView, load_view
from edudesk.core.config import Settings
from edudesk.core.jobs import Handlers, JobKind, JobQueue, PermanentJobError, RetryLater
from edudesk.core.models import Job
from edudesk.core.people.models import Staff
from edudesk.core.people.staff import Role, actor_for_staff
from edudesk.core.ports import Button, Card, ChatBusy, ChatDown, ChatPort, ChatRefused, Clock

log = logging.getLogger(__name__)
T = TypeVar("T")
CLAIM = "?"  # message_ref of a card being posted (a claim token, not yet the platform's id)
CLAIM_TIMEOUT = timedelta(minutes=2)
REFUSED = "refused"  # message_ref of a card its person's chat refused (they blocked the bot)
ROLE_AUDIENCES = (Role.OFFICE.value, Role.TECHNICAL.value, Role.HEAD.value)
CardBuilder = Callable[[RequestView, str, Settings, datetime], Card]  # a request's card for one audience


def asks(card: Card) -> bool:
    """Whether a card asks something of whoever reads it (a button that acts, not one that pages or links)."""
    return any(b.action not in NAVIGATION and not b.url for row in card.buttons for b in row)


class ChatHub:
    """Job handlers `refresh_cards` and `chat_notice` over the registered chat ports.

    The web console needs none of this: it renders cards from the database on every view.
    """

    def __init__(self, settings: Settings, clock: Clock, cards: CardBuilder,
                 health: Callable[[str, bool, str], Awaitable[None]] | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.cards = cards  # bot/cards.py build_card, given by the composition root
        self.health = health  # the ledger's report_health: a chat that keeps failing is told by mail
        self.queue: JobQueue | None = None  # for notices that go by e-mail (set by the App)
        self._reported_ok: set[str] = set()
        self.ports: dict[Surface, ChatPort] = {}
        self.chats: dict[Surface, dict[str, str]] = {}  # surface -> audience -> group chat id
        self._locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)

    def add(self, port: ChatPort, chats: dict[str, str]) -> None:
        """Register a chat port with its group chat ids per audience ("office", "technical", "head"); a port
        without groups gets `{}`."""
        self.ports[port.surface] = port
        self.chats[port.surface] = {k: v for k, v in chats.items() if v}

    def handlers(self) -> Handlers:
        """The jobs of the chat side: bring a request's cards up to date, post a notice."""
        return {JobKind.REFRESH_CARDS: self.refresh_cards, JobKind.CHAT_NOTICE: self.notice}

    def preferred(self, staff: Staff) -> str:
        """Where a person's own notices go: their choice when that chat is linked and running, else the first
        linked chat in `Surface` order, else e-mail (`NOTIFY_EMAIL`)."""
        linked = [s for s in Surface if s in self.ports and account(staff, s)]
        if staff.notify_via == NOTIFY_EMAIL:
            return NOTIFY_EMAIL
        if staff.notify_via in linked:
            return staff.notify_via
        return linked[0] if linked else NOTIFY_EMAIL

    async def _chats_for(self, port: ChatPort, audience: str) -> list[str]:
        """The chats of an audience on a port: a person's own chat, a group, or (without groups) the chat of
        each active person of that role whose notices go to this surface."""
        surface = port.surface
        if audience.startswith("staff:"):
            staff = await Staff.get_or_none(id=int(audience.removeprefix("staff:")))
            if staff is None or not staff.active or self.preferred(staff) != surface:
                return []
            return [chat] if (chat := account(staff, surface)) else []
        if port.capabilities.groups:
            return [chat] if (chat := self.chats.get(surface, {}).get(audience, "")) else []
        if audience not in ROLE_AUDIENCES:
            return []
        chats = []
        for staff in await linked_staff(surface):
            actor = await actor_for_staff(staff.id, self.settings)  # roles from the table and from config
            if actor is not None and Role(audience) in actor.roles and self.preferred(staff) == surface:
                chats.append(account(staff, surface))
        return chats

    async def _healthy(self, surface: str, ok: bool, detail: str = "") -> None:
        # Every failure is written; a success only the first time after start or after a failure (the
        # stored row may say "failing" from before a restart), not one row update per message sent.
        if self.health is not None and (not ok or surface not in self._reported_ok):
            await self.health(surface, ok, detail)
        (self._reported_ok.add if ok else self._reported_ok.discard)(surface)

    async def _call(self, port: ChatPort, audience: str, call: Awaitable[T]) -> T:
        """One platform call, with its outcome for the channel's health (only a channel-wide failure,
        or the bot refused by a staff group, counts: one person not having started the bot does not)."""
        try:
            result = await call
        except ChatBusy as exc:
            raise RetryLater(exc.wait) from None
        except ChatDown as exc:
            await self._healthy(port.surface, False, str(exc))
            raise
        except ChatRefused as exc:
            if audience.startswith("staff:") or not port.capabilities.groups:  # one person's chat
                raise PermanentJobError(f"{audience} refuses the bot (never started it?): {exc}") from None
            await self._healthy(port.surface, False, f"{audience} chat refuses the bot: {exc}")
            raise
        await self._healthy(port.surface, True)
        return result

    def _fit(self, port: ChatPort, card: Card, request_id: int | None) -> Card:
        """The card within the chat's text limit; the cut part is in the web console, linked when it can be."""
        caps = port.capabilities
        if len(card.text) <= caps.text_limit:
            return card
        link = ""
        if caps.links and self.settings.web.public_url:
            link = f"{self.settings.web_url}/requests/{request_id}" if request_id else self.settings.web_url
        return Card(cut(card.text, caps.text_limit, link, self.settings.general.language), card.buttons)

    def _card(self, port: ChatPort, view: RequestView, audience: str, now: datetime) -> Card:
        return self._fit(port, self.cards(view, audience, self.settings, now), view.request.id)

    async def refresh_cards(self, job: Job) -> None:
        """Bring every posted card of a request to its current state; post it where it is now worked on."""
        try:
            await self._refresh(int(job.payload["request_id"]), job.payload.get("post_to", []))
        except ChatBusy as exc:
            raise RetryLater(exc.wait) from None  # done parts are recorded; the rest goes when the chat is free

    async def _refresh(self, request_id: int, post_to: list[str]) -> None:
        if not self.ports:
            return
        async with self._locks[request_id]:
            view = await load_view(request_id)
            for port in self.ports.values():
                await self._refresh_port(port, view, post_to)

    async def _update(self, port: ChatPort, cc: ChatCard, card: Card) -> str:
        """Bring one posted card up to date; the reference of the message that now shows it."""
        if port.capabilities.edit_in_place:
            await self._call(port, cc.audience, port.edit_card(cc.chat, cc.message_ref, card))
            return cc.message_ref
        if asks(card):  # the old message's commands and links are stale: the card again, whole
            return await self._call(port, cc.audience, port.post_card(cc.chat, card))
        if text := update_line(card):  # nothing to do for them: what changed, in a few lines
            await self._call(port, cc.audience, port.post_card(cc.chat, Card(text)))
        return cc.message_ref

    async def _refresh_port(self, port: ChatPort, view: RequestView, post_to: list[str]) -> None:
        surface, caps = port.surface, port.capabilities
        request_id, version, now = view.request.id, view.request.version, self.clock.now()
        cards = await ChatCard.filter(surface=surface, request_id=request_id)
        in_flight: set[str] = set()  # chats where another worker is posting the card right now
        for cc in cards:
            if cc.message_ref.startswith(CLAIM):
                in_flight.add(cc.chat)
            elif cc.version < version and cc.message_ref != REFUSED:
                if not caps.groups and cc.chat not in await self._chats_for(port, cc.audience):
                    # A person's chat, and they left the role, were disabled, chose another channel, or the
                    # account moved to someone else: no more of the applicant's data goes there.
                    await ChatCard.filter(id=cc.id).update(version=version, message_ref=REFUSED, updated_at=now)
                    continue
                ref = cc.message_ref
                try:
                    ref = await self._update(port, cc, self._card(port, view, cc.audience, now))
                except PermanentJobError as exc:  # one person blocked the bot: the others still get theirs
                    log.warning("card %s not updated in %s chat %s: %s", request_id, surface, cc.chat, exc)
                await ChatCard.filter(id=cc.id).update(version=version, message_ref=ref, updated_at=now)
        by_chat = {cc.chat: cc for cc in cards}
        # Claimed rows are revisited too: a claim left by a worker that died is taken over and posted.
        audiences = list(dict.fromkeys([*post_to, *(cc.audience for cc in cards if cc.chat in in_flight)]))
        for audience, chat in [(a, c) for a in audiences for c in await self._chats_for(port, a)]:
            existing = by_chat.get(chat)
            if existing is not None and existing.audience != audience and not existing.message_ref.startswith(CLAIM):
                # One chat serving two audiences (one person in two roles, one group for both): the new
                # audience's card, with its actions, goes as a new message; the row now follows that audience.
                await ChatCard.filter(id=existing.id, message_ref=existing.message_ref).delete()
                existing = None
            token = await self._claim(surface, chat, request_id, audience, version, existing)
            if token is None:
                continue  # posted already, or in flight (noted above)
            card = self._card(port, view, audience, now)
            try:
                ref = await self._call(port, audience, port.post_card(chat, card))
            except PermanentJobError as exc:  # that one person refuses the bot: by e-mail instead
                log.warning("card %s not posted to %s chat %s: %s", request_id, surface, chat, exc)
                ref = REFUSED
                owner = await staff_by_account(surface, chat)
                if owner is not None and owner.email:
                    await self._mail(f"card_mail:{request_id}:{owner.id}:{version}", owner,
                                     self.cards(view, audience, self.settings, now), surface)
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

    async def _claim(self, surface: Surface, chat: str, request_id: int, audience: str, version: int,
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
        """Post a notice (reminder, escalation, assignment) to an audience's chats on every port."""
        payload = job.payload
        rows = tuple(tuple(Button(**{**b, "action": ButtonAction(b["action"])}) for b in row)
                     for row in payload.get("buttons") or [])
        card = Card(payload["text"], rows)
        audience = payload["audience"]
        person = await self._person(audience)
        if person is not None and self.preferred(person) == NOTIFY_EMAIL:
            await self._mail_notice(job, person, card, "")  # their choice: no "chat failed" line
            return
        done = job.payload.get("done") or []  # "surface:chat" posted already (a retry posts only the others)
        for surface, port in self.ports.items():
            chats = await self._chats_for(port, audience)
            if not chats:
                log.info("no %s chat for %s; notice kept in the audit trail only", surface, audience)
            for chat in chats:
                if f"{surface}:{chat}" in done:
                    continue
                try:
                    await self._call(port, audience, port.post_card(chat, self._fit(port, card,
                                                                                     payload.get("request_id"))))
                except (ChatRefused, PermanentJobError, ChatDown) as exc:
                    retry = isinstance(exc, ChatDown) and job.attempts < self.settings.jobs.max_attempts
                    owner = person or (None if port.capabilities.groups else await staff_by_account(surface, chat))
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
        await self._mail(f"notice_mail:{job.key}:{staff.id}", staff, card, surface)

    async def _mail(self, key: str, staff: Staff, card: Card, surface: str) -> None:
        """A card or notice as a mail to one staff member (`surface`: the chat that failed, "" if none)."""
        await mail_card(self.settings, self.clock, self.queue, key, staff, card, surface)
