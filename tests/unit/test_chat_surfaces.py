"""The chat surfaces in the core: one enum member and one account column per platform, the stored values
unchanged, one enum of button actions for every surface, and card text cut for chats with a limit."""

from __future__ import annotations

from edudesk.bot.telegram.callbacks import TapAction
from edudesk.bot.telegram.chat import TelegramChat
from edudesk.bot.zalo.chat import ZaloChat
from edudesk.core.chats.actions import NAVIGATION, ButtonAction
from edudesk.core.chats.surfaces import ACCOUNTS, NOTIFY_CHOICES, Surface, surface_of
from edudesk.core.chats.text import cut
from edudesk.core.people.chatlinks import SURFACES
from edudesk.core.people.models import Staff


def test_the_stored_values_of_surfaces_and_notice_choices_are_unchanged() -> None:
    assert [s.value for s in Surface] == ["telegram", "zalo"]  # also the order people's notices fall back in
    assert NOTIFY_CHOICES == ("", "telegram", "zalo", "email")
    assert SURFACES == tuple(Surface)
    assert surface_of("zalo") is Surface.ZALO and surface_of("email") is None


def test_every_surface_names_a_staff_column_for_its_accounts() -> None:
    assert set(ACCOUNTS) == set(Surface)
    for account in ACCOUNTS.values():
        assert account.column in Staff._meta.fields_map
    assert ACCOUNTS[Surface.TELEGRAM].parse("42") == 42 and ACCOUNTS[Surface.ZALO].parse("z-1") == "z-1"


def test_the_ports_declare_what_their_platform_can_do() -> None:
    assert TelegramChat.surface is Surface.TELEGRAM and TelegramChat.capabilities.groups
    assert TelegramChat.capabilities.edit_in_place and TelegramChat.capabilities.text_limit == 4096
    bot = ZaloChat(client=None, settings=None, clock=None)  # type: ignore[arg-type]
    oa = ZaloChat(client=None, settings=None, clock=None, oa=True)  # type: ignore[arg-type]
    assert bot.surface is Surface.ZALO and not bot.capabilities.groups and not bot.capabilities.edit_in_place
    assert bot.capabilities.text_limit == 2000 and not bot.capabilities.buttons and oa.capabilities.buttons


def test_one_enum_of_button_actions_serves_every_surface_with_the_stored_values() -> None:
    assert TapAction is ButtonAction
    assert {"approve", "reject", "ask_info", "provision", "pick_reject", "pick_ask_info", "rec_sign",
            "reassign_pick"} <= {a.value for a in ButtonAction}
    assert ButtonAction.APPROVE not in NAVIGATION and ButtonAction.PAGE in NAVIGATION


def test_cut_keeps_whole_lines_and_says_where_the_rest_is() -> None:
    text = "\n".join(f"<b>dòng {i}</b>" for i in range(100))
    short = cut(text, 200, "https://hd.vn/requests/7")
    assert len(short) <= 200 and short.endswith("… (còn nữa: https://hd.vn/requests/7)")
    assert all(line.startswith("<b>") and line.endswith("</b>") for line in short.splitlines()[:-1])
    assert cut(text, 200, "", "en").endswith("\n…") and cut("ngắn", 200) == "ngắn"
    assert cut(text, 200, "https://hd.vn", "en").endswith("… (more: https://hd.vn)")
