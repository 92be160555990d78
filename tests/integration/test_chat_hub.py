"""The chat hub chooses by what a chat port can do, never by its name: a new platform declares its capabilities
and the core needs no change. A small port below records what it is asked to post and edit; the real hub,
database and job rows do the rest (SQLite, or PostgreSQL with EDUDESK_TEST_PG)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import pytest

from edudesk.core.chats.actions import ButtonAction
from edudesk.core.chats.hub import REFUSED, ChatHub
from edudesk.core.chats.models import ChatCard
from edudesk.core.chats.surfaces import Capabilities, Surface
from edudesk.core.chats.view import RequestView
from edudesk.core.config import Settings
from edudesk.core.models import Job
from edudesk.core.people.models import Staff
from edudesk.core.ports import Button, Card, ChatRefused, FakeClock
from edudesk.core.requests.models import OutgoingMail, Request

pytestmark = pytest.mark.db
PERSONAL = Capabilities(groups=False, buttons=False, edit_in_place=False, text_limit=2000, links=True)
GROUPS = Capabilities(groups=True, buttons=True, edit_in_place=True, text_limit=4096, links=True)


@dataclass
class Posted:
    chat: str
    text: str
    ref: str = ""
    edited: bool = False


@dataclass
class RecordingChat:
    """A chat port for a platform the core has never heard of: it keeps what it was asked to send."""

    capabilities: Capabilities
    surface: Surface = Surface.TELEGRAM  # any member: the hub must not care which
    sent: list[Posted] = field(default_factory=list)
    refusing: set[str] = field(default_factory=set)

    async def post_card(self, chat: str, card: Card) -> str:
        """Record the card; a chat in `refusing` has blocked the bot."""
        if chat in self.refusing:
            raise ChatRefused("blocked")
        ref = str(len(self.sent) + 1)
        self.sent.append(Posted(chat, card.text, ref))
        return ref

    async def edit_card(self, chat: str, ref: str, card: Card) -> None:
        """Record the edit (a platform that cannot edit is never asked to)."""
        assert self.capabilities.edit_in_place, "the hub edited on a platform that cannot edit"
        self.sent.append(Posted(chat, card.text, ref, edited=True))

    def to(self, chat: str) -> list[Posted]:
        return [p for p in self.sent if p.chat == chat]


def build(view: RequestView, audience: str, settings: Settings, now: datetime) -> Card:
    """A card as bot/cards.py makes one, reduced to what these tests read: who it is for, the state, actions."""
    r = view.request
    buttons: tuple[tuple[Button, ...], ...] = ()
    if audience == "office" and r.state == "received":
        buttons = ((Button("Hợp lệ", ButtonAction.APPROVE, r.id, r.version),),)
    if audience == "technical" and r.state == "approved":
        buttons = ((Button("Cấp", ButtonAction.PROVISION, r.id, r.version),),)
    lines = "\n".join(f"dòng {i}" for i in range(int(r.subject or 0)))
    return Card(f"<b>YC-{r.id}</b> {audience}\nTrạng thái: {r.state}\n{lines}\nv{r.version}".strip(), buttons)


@pytest.fixture
async def world(app_factory: Any, settings_factory: Any) -> Any:
    clock = FakeClock()
    app = await app_factory(settings_factory(web={"enabled": False, "public_url": "https://hd.vn"}), clock=clock)
    app.worker.stop()  # the handlers are driven by hand
    people = {}
    for name, roles, account in (("An", ["office"], 101), ("Bình", ["office"], 102), ("Chi", ["technical"], 103),
                                 ("Dũng", ["office"], None)):
        people[name] = await Staff.create(name=name, email=f"{account or 'dung'}@hust.edu.vn", roles=roles,
                                          telegram_id=account, created_at=clock.now())
    return app, clock, people


async def request(clock: FakeClock, state: str = "received", lines: int = 0) -> Request:
    now = clock.now()
    return await Request.create(kind="new_account", population="student", state=state, sender="hs@gmail.com",
                                subject=str(lines), received_at=now, updated_at=now)


def hub_with(app: Any, port: RecordingChat, groups: dict[str, str] | None = None) -> ChatHub:
    hub = ChatHub(app.settings, app.clock, build)
    hub.queue = app.queue
    hub.add(port, groups or {})
    return hub


def job(request_id: int, *post_to: str) -> Job:
    return Job(kind="refresh_cards", key="k", payload={"request_id": request_id, "post_to": list(post_to)})


async def test_without_groups_each_person_of_the_role_gets_the_card_in_their_own_chat(world: Any) -> None:
    app, clock, _ = world
    port = RecordingChat(PERSONAL)
    r = await request(clock)
    await hub_with(app, port).refresh_cards(job(r.id, "office"))
    assert sorted(p.chat for p in port.sent) == ["101", "102"]  # office people with an account; not technical
    assert all("office" in p.text for p in port.sent)


async def test_with_groups_the_card_goes_once_to_the_audience_group(world: Any) -> None:
    app, clock, _ = world
    port = RecordingChat(GROUPS)
    r = await request(clock)
    await hub_with(app, port, {"office": "-100", "technical": "-200"}).refresh_cards(job(r.id, "office"))
    assert [p.chat for p in port.sent] == ["-100"]


async def test_without_edit_in_place_a_card_that_still_asks_goes_again_and_any_other_change_as_an_update(
        world: Any) -> None:
    app, clock, _ = world
    port = RecordingChat(PERSONAL)
    hub = hub_with(app, port)
    r = await request(clock)
    await hub.refresh_cards(job(r.id, "office"))
    await Request.filter(id=r.id).update(version=1)  # a reply came: still waiting for the office
    await hub.refresh_cards(job(r.id))
    again = port.to("101")[-1]
    assert again.text.endswith("v1") and not again.edited  # the whole card, with its fresh actions
    assert (await ChatCard.get(chat="101", request_id=r.id)).message_ref == again.ref

    await Request.filter(id=r.id).update(version=2, state="approved")  # nothing more for the office to do
    await hub.refresh_cards(job(r.id))
    update = port.to("101")[-1].text
    assert update.startswith("YC-") and "Trạng thái: approved" in update and "dòng" not in update
    assert not any(p.edited for p in port.sent)


async def test_with_edit_in_place_every_change_edits_the_message_already_sent(world: Any) -> None:
    app, clock, _ = world
    port = RecordingChat(GROUPS)
    hub = hub_with(app, port, {"office": "-100"})
    r = await request(clock)
    await hub.refresh_cards(job(r.id, "office"))
    await Request.filter(id=r.id).update(version=1, state="approved")
    await hub.refresh_cards(job(r.id))
    assert [(p.ref, p.edited) for p in port.sent] == [("1", False), ("1", True)]


async def test_a_card_over_the_text_limit_is_cut_at_a_line_with_a_link_to_the_console(world: Any) -> None:
    app, clock, _ = world
    linked = RecordingChat(replace(GROUPS, text_limit=300))
    r = await request(clock, lines=200)
    await hub_with(app, linked, {"office": "-100"}).refresh_cards(job(r.id, "office"))
    text = linked.sent[0].text
    assert len(text) <= 300 and text.startswith("<b>YC-")
    assert text.endswith(f"… (còn nữa: https://hd.vn/requests/{r.id})")
    assert text.splitlines()[-2].startswith("dòng ")  # cut between lines, never inside one

    bare = RecordingChat(replace(GROUPS, text_limit=300, links=False))
    other = await request(clock, lines=200)
    await hub_with(app, bare, {"office": "-100"}).refresh_cards(job(other.id, "office"))
    assert len(bare.sent[0].text) <= 300 and bare.sent[0].text.endswith("\n…")


async def test_a_person_who_blocked_the_bot_gets_the_card_by_mail_and_the_others_still_get_theirs(
        world: Any) -> None:
    app, clock, people = world
    port = RecordingChat(PERSONAL, refusing={"101"})
    r = await request(clock)
    await hub_with(app, port).refresh_cards(job(r.id, "office"))  # does not fail: one person's matter
    assert [p.chat for p in port.sent] == ["102"]
    assert (await ChatCard.get(chat="101", request_id=r.id)).message_ref == REFUSED
    mail = await OutgoingMail.get(recipient=people["An"].email)
    assert mail.template == "chat_notice"


async def test_a_group_that_refuses_the_bot_fails_the_job_and_marks_the_channel_unhealthy(world: Any) -> None:
    app, clock, _ = world
    reports: list[tuple[str, bool]] = []

    async def health(surface: str, ok: bool, detail: str) -> None:
        reports.append((surface, ok))

    port = RecordingChat(GROUPS, refusing={"-100"})
    hub = ChatHub(app.settings, app.clock, build, health)
    hub.add(port, {"office": "-100"})
    r = await request(clock)
    with pytest.raises(ChatRefused):
        await hub.refresh_cards(job(r.id, "office"))
    assert reports == [(port.surface, False)]


async def test_one_person_in_two_roles_gets_the_new_roles_card_as_a_new_message(world: Any) -> None:
    app, clock, people = world
    await Staff.filter(id=people["An"].id).update(roles=["office", "technical"])
    port = RecordingChat(replace(PERSONAL, edit_in_place=True))  # even where an edit could replace it
    hub = hub_with(app, port)
    r = await request(clock)
    await hub.refresh_cards(job(r.id, "office"))
    await Request.filter(id=r.id).update(version=1, state="approved")
    await hub.refresh_cards(job(r.id, "technical"))
    last = port.to("101")[-1]
    assert not last.edited and "technical" in last.text
    assert (await ChatCard.get(chat="101", request_id=r.id)).audience == "technical"


async def test_a_personal_notice_goes_to_the_persons_linked_chat_else_by_mail(world: Any) -> None:
    app, clock, people = world
    port = RecordingChat(PERSONAL)
    hub = hub_with(app, port)
    buttons = [[{"label": "Giao lại", "action": "reassign_pick", "request_id": 1}]]
    for name in ("Chi", "Dũng"):
        await hub.notice(Job(id=0, kind="chat_notice", key=f"n:{name}", attempts=1,
                             payload={"audience": f"staff:{people[name].id}", "text": "Nhắc việc", "buttons": buttons}))
    assert [(p.chat, p.text) for p in port.sent] == [("103", "Nhắc việc")]
    assert hub.preferred(people["Dũng"]) == "email"  # no chat linked
    assert await OutgoingMail.filter(recipient=people["Dũng"].email, template="chat_notice").count() == 1
