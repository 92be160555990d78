"""MailcowProvisioner against the fake mailcow API (tests/fakes/mailcow.py): what goes on the wire, how
mailcow's HTTP-200 refusals are read, recognising its own mailbox by its tags, and retries."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from edudesk.core.config import MailcowBackendSettings
from edudesk.core.errors import ConfigError
from edudesk.core.ports import AccountSpec, AddressTaken, FakeClock, ProvisionError
from edudesk.directories import make_provisioner
from edudesk.directories.mailcow import MailcowProvisioner, Outcome, reason
from tests.conftest import make_settings
from tests.fakes.mailcow import DEFAULT_KEY, FakeMailcow, fake_mailcow_fixture  # noqa: F401

PASSWORD = "Mat-Khau-9x!"
ADDRESS = "an.nguyen@school.test"


class Sleeps:
    """Records backoff delays instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def mailcow(fake_mailcow: FakeMailcow, sleeps: Sleeps) -> AsyncIterator[MailcowProvisioner]:
    """The adapter pointed at the fake, three attempts per call, no real sleeping."""
    provisioner = MailcowProvisioner(MailcowBackendSettings(url=fake_mailcow.url, quota_mb=2048), DEFAULT_KEY,
                                     attempts=3, backoff=0.5, sleep=sleeps)
    yield provisioner
    await provisioner.close()


def spec(address: str = ADDRESS, **overrides: Any) -> AccountSpec:
    """Nguyễn Văn An, student HS001, under request 7."""
    values: dict[str, Any] = dict(address=address, full_name="Nguyễn Văn An", population="student",
                                  person_id="HS001", request_id=7, key="7:abc123")
    values.update(overrides)
    return AccountSpec(**values)


# ---- create ---------------------------------------------------------------------------------------------

async def test_create_sends_mailbox_fields_with_key_tags(fake_mailcow: FakeMailcow,
                                                         mailcow: MailcowProvisioner) -> None:
    assert await mailcow.create(spec(), PASSWORD) == "created"

    call = fake_mailcow.calls_to("add/mailbox")[0]
    assert call.method == "POST" and call.headers["X-API-Key"] == DEFAULT_KEY
    assert call.headers["Content-Type"].startswith("application/json")
    assert call.body == {"local_part": "an.nguyen", "domain": "school.test", "name": "Nguyễn Văn An",
                         "password": PASSWORD, "password2": PASSWORD, "quota": 2048, "active": "1",
                         "force_pw_update": "1", "tags": ["edudesk-key:7:abc123", "edudesk-person:HS001"]}
    assert fake_mailcow.check_password(ADDRESS, PASSWORD)
    entry = await mailcow.lookup(ADDRESS)
    assert entry is not None
    assert (entry.state, entry.key, entry.person_id, entry.full_name) == ("active", "7:abc123", "HS001",
                                                                          "Nguyễn Văn An")


async def test_force_change_off_sends_force_pw_update_0(fake_mailcow: FakeMailcow,
                                                        mailcow: MailcowProvisioner) -> None:
    await mailcow.create(spec(force_change=False), PASSWORD)
    assert fake_mailcow.calls_to("add/mailbox")[0].body["force_pw_update"] == "0"
    assert fake_mailcow.mailboxes[ADDRESS].force_pw_update == "0"


async def test_taken_address_raises_address_taken(fake_mailcow: FakeMailcow, mailcow: MailcowProvisioner) -> None:
    fake_mailcow.add_mailbox(ADDRESS, "Their-own-1", name="Nguyễn Văn An (cũ)")

    with pytest.raises(AddressTaken) as caught:
        await mailcow.create(spec(), PASSWORD)

    assert caught.value.address == ADDRESS and caught.value.permanent
    assert fake_mailcow.check_password(ADDRESS, "Their-own-1")  # someone else's mailbox is left alone
    assert fake_mailcow.calls_to("edit/mailbox") == []


async def test_alias_address_raises_address_taken(fake_mailcow: FakeMailcow, mailcow: MailcowProvisioner) -> None:
    fake_mailcow.aliases.add(ADDRESS)
    with pytest.raises(AddressTaken):
        await mailcow.create(spec(), PASSWORD)


async def test_rerun_after_crash_links_own_mailbox(fake_mailcow: FakeMailcow, mailcow: MailcowProvisioner) -> None:
    await mailcow.create(spec(), PASSWORD)
    await mailcow.suspend(ADDRESS)

    assert await mailcow.create(spec(), "Second-Pass-2") == "linked"

    assert fake_mailcow.check_password(ADDRESS, "Second-Pass-2")
    assert fake_mailcow.mailboxes[ADDRESS].active == 1
    edit = fake_mailcow.calls_to("edit/mailbox")[-1].body
    assert edit["items"] == [ADDRESS] and edit["attr"]["password2"] == "Second-Pass-2"


async def test_same_person_from_another_request_links(fake_mailcow: FakeMailcow,
                                                      mailcow: MailcowProvisioner) -> None:
    fake_mailcow.add_mailbox(ADDRESS, "Old-Pass-1", tags=("edudesk-person:HS001", "lop-10a1"))
    assert await mailcow.create(spec(key="9:zzz"), PASSWORD) == "linked"
    assert fake_mailcow.check_password(ADDRESS, PASSWORD)


async def test_lost_answer_to_create_is_retried_and_linked(fake_mailcow: FakeMailcow,
                                                           mailcow: MailcowProvisioner) -> None:
    fake_mailcow.drop_next(after_processing=True)
    assert await mailcow.create(spec(), PASSWORD) == "linked"
    assert len(fake_mailcow.calls_to("add/mailbox")) == 2 and len(fake_mailcow.mailboxes) == 1


async def test_mailcow_that_drops_tags_is_reported_once(fake_mailcow: FakeMailcow, mailcow: MailcowProvisioner,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    fake_mailcow.keeps_tags = False
    await mailcow.create(spec(), PASSWORD)
    await mailcow.create(spec("binh.tran@school.test", person_id="HS002", key="7:def456"), PASSWORD)
    assert caplog.text.count("does not keep mailbox tags") == 1
    with pytest.raises(AddressTaken):  # what a re-run meets on such a server: the job must not lose the row
        await mailcow.create(spec(), PASSWORD)


# ---- refusals -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("answer", ["domain_not_found", "access_denied"])
async def test_unknown_domain_is_a_permanent_refusal(fake_mailcow: FakeMailcow, mailcow: MailcowProvisioner,
                                                     answer: str) -> None:
    fake_mailcow.unknown_domain = answer
    with pytest.raises(ProvisionError) as caught:
        await mailcow.create(spec("an@other.test"), PASSWORD)
    assert not isinstance(caught.value, AddressTaken)
    assert caught.value.permanent and "an@other.test" in caught.value.message
    assert answer in caught.value.message and "tên miền" in caught.value.message


async def test_password_policy_refusal_is_permanent(fake_mailcow: FakeMailcow, mailcow: MailcowProvisioner) -> None:
    fake_mailcow.policy.length = 16
    with pytest.raises(ProvisionError) as caught:
        await mailcow.create(spec(), PASSWORD)
    assert caught.value.permanent
    assert "chính sách mật khẩu" in caught.value.message and "password_complexity" in caught.value.message
    assert ADDRESS not in fake_mailcow.mailboxes


async def test_full_domain_is_a_permanent_refusal(fake_mailcow: FakeMailcow, mailcow: MailcowProvisioner) -> None:
    fake_mailcow.domains["school.test"].mailboxes = 1
    fake_mailcow.add_mailbox("admin@school.test", "Admin-Pass-1")
    with pytest.raises(ProvisionError) as caught:
        await mailcow.create(spec(), PASSWORD)
    assert caught.value.permanent and "max_mailbox_exceeded: 1, 1" in caught.value.message


async def test_quota_over_domain_limit_is_a_permanent_refusal(fake_mailcow: FakeMailcow,
                                                              mailcow: MailcowProvisioner) -> None:
    fake_mailcow.domains["school.test"].maxquota = 1024
    with pytest.raises(ProvisionError) as caught:
        await mailcow.create(spec(), PASSWORD)
    assert caught.value.permanent and "mailbox_quota_exceeded: 1024" in caught.value.message


# ---- reset, suspend, delete -----------------------------------------------------------------------------

async def test_reset_sets_password_and_allows_sign_in_again(fake_mailcow: FakeMailcow,
                                                            mailcow: MailcowProvisioner) -> None:
    await mailcow.create(spec(), PASSWORD)
    await mailcow.suspend(ADDRESS)

    await mailcow.reset_password(ADDRESS, "New-Pass-77", force_change=False)

    box = fake_mailcow.mailboxes[ADDRESS]
    assert fake_mailcow.check_password(ADDRESS, "New-Pass-77") and box.active == 1 and box.force_pw_update == "0"


async def test_reset_of_absent_mailbox_is_permanent(mailcow: MailcowProvisioner) -> None:
    with pytest.raises(ProvisionError) as caught:
        await mailcow.reset_password("nobody@school.test", PASSWORD)
    assert caught.value.permanent and "nobody@school.test" in caught.value.message


async def test_suspend_disallows_login_and_keeps_mail_flowing(fake_mailcow: FakeMailcow,
                                                              mailcow: MailcowProvisioner) -> None:
    await mailcow.create(spec(), PASSWORD)

    assert await mailcow.suspend(ADDRESS) == "suspended"

    assert fake_mailcow.calls_to("edit/mailbox")[-1].body == {"items": [ADDRESS], "attr": {"active": "2"}}
    assert fake_mailcow.mailboxes[ADDRESS].active == 2
    entry = await mailcow.lookup(ADDRESS)
    assert entry is not None and entry.state == "suspended"
    assert await mailcow.suspend("nobody@school.test") == "absent"


async def test_delete_then_lookup_is_none_and_delete_again_absent(fake_mailcow: FakeMailcow,
                                                                  mailcow: MailcowProvisioner) -> None:
    await mailcow.create(spec(), PASSWORD)

    assert await mailcow.delete(ADDRESS) == "deleted"

    assert fake_mailcow.calls_to("delete/mailbox")[0].body == [ADDRESS]
    assert await mailcow.lookup(ADDRESS) is None
    assert await mailcow.delete(ADDRESS) == "absent"


async def test_delete_whose_answer_was_lost_answers_deleted(fake_mailcow: FakeMailcow,
                                                            mailcow: MailcowProvisioner) -> None:
    await mailcow.create(spec(), PASSWORD)
    fake_mailcow.drop_next(after_processing=True)
    assert await mailcow.delete(ADDRESS) == "deleted"
    assert ADDRESS not in fake_mailcow.mailboxes


# ---- the API key ----------------------------------------------------------------------------------------

async def test_bad_api_key_is_permanent_and_not_retried(fake_mailcow: FakeMailcow, sleeps: Sleeps) -> None:
    wrong = MailcowProvisioner(MailcowBackendSettings(url=fake_mailcow.url), "WRONG-KEY", sleep=sleeps)
    try:
        with pytest.raises(ProvisionError) as caught:
            await wrong.create(spec(), PASSWORD)
    finally:
        await wrong.close()
    assert caught.value.permanent and "khoá API" in caught.value.message
    assert len(fake_mailcow.calls) == 1 and sleeps.delays == []  # mailcow's fail2ban counts each try


async def test_caller_ip_not_allow_listed_is_permanent(fake_mailcow: FakeMailcow,
                                                       mailcow: MailcowProvisioner) -> None:
    fake_mailcow.keys[DEFAULT_KEY].allow_from = ("192.0.2.10",)
    with pytest.raises(ProvisionError) as caught:
        await mailcow.lookup(ADDRESS)
    assert caught.value.permanent and "api access denied for ip 127.0.0.1" in caught.value.message


async def test_read_only_key_is_permanent(fake_mailcow: FakeMailcow, mailcow: MailcowProvisioner) -> None:
    fake_mailcow.keys[DEFAULT_KEY].access = "ro"
    assert await mailcow.lookup(ADDRESS) is None
    with pytest.raises(ProvisionError) as caught:
        await mailcow.suspend(ADDRESS)
    assert caught.value.permanent and "quyền ghi" in caught.value.message


# ---- transient failures ---------------------------------------------------------------------------------

async def test_server_errors_are_retried_then_succeed(fake_mailcow: FakeMailcow, mailcow: MailcowProvisioner,
                                                      sleeps: Sleeps) -> None:
    fake_mailcow.fail_next(502)
    fake_mailcow.drop_next()
    assert await mailcow.create(spec(), PASSWORD) == "created"
    assert len(sleeps.delays) == 2 and sleeps.delays[1] > sleeps.delays[0]  # exponential


async def test_retry_after_is_honoured(fake_mailcow: FakeMailcow, mailcow: MailcowProvisioner,
                                       sleeps: Sleeps) -> None:
    fake_mailcow.fail_next(429, retry_after="7")
    assert await mailcow.lookup(ADDRESS) is None
    assert sleeps.delays == [7.0]


async def test_exhausted_retries_raise_a_transient_error(fake_mailcow: FakeMailcow, mailcow: MailcowProvisioner,
                                                         sleeps: Sleeps) -> None:
    fake_mailcow.fail_next(503, times=10, retry_after="3")
    with pytest.raises(ProvisionError) as caught:
        await mailcow.create(spec(), PASSWORD)
    assert not caught.value.permanent and caught.value.retry_after == 3.0
    assert len(fake_mailcow.calls) == 3 and len(sleeps.delays) == 2


async def test_long_retry_after_goes_back_to_the_queue(fake_mailcow: FakeMailcow, mailcow: MailcowProvisioner,
                                                       sleeps: Sleeps) -> None:
    fake_mailcow.fail_next(503, retry_after="600")
    with pytest.raises(ProvisionError) as caught:
        await mailcow.lookup(ADDRESS)
    assert not caught.value.permanent and caught.value.retry_after == 600.0 and sleeps.delays == []


async def test_unreachable_server_raises_a_transient_error(sleeps: Sleeps) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    down = MailcowProvisioner(MailcowBackendSettings(url=f"http://127.0.0.1:{port}"), DEFAULT_KEY, attempts=2,
                              sleep=sleeps)
    try:
        with pytest.raises(ProvisionError) as caught:
            await down.create(spec(), PASSWORD)
    finally:
        await down.close()
    assert not caught.value.permanent and caught.value.retry_after and len(sleeps.delays) == 1


async def test_password_never_in_errors_or_logs(fake_mailcow: FakeMailcow, mailcow: MailcowProvisioner,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []
    fake_mailcow.policy.length = 20
    for attempt in (lambda: mailcow.create(spec(), PASSWORD),
                    lambda: mailcow.reset_password("nobody@school.test", PASSWORD)):
        with pytest.raises(ProvisionError) as caught:
            await attempt()
        errors.append(str(caught.value))
    fake_mailcow.policy.length = 6
    fake_mailcow.fail_next(500, times=3)
    with pytest.raises(ProvisionError) as caught:
        await mailcow.create(spec(), PASSWORD)
    errors.append(str(caught.value))
    await mailcow.create(spec(), PASSWORD)
    await mailcow.create(spec(), PASSWORD)  # linked

    assert all(PASSWORD not in text for text in errors)
    assert PASSWORD not in caplog.text and "mailcow: linked" in caplog.text


def test_reason_masks_a_password_the_server_echoes() -> None:
    said = reason(Outcome("danger", "password_complexity", (PASSWORD,)), PASSWORD)
    assert PASSWORD not in said and "chính sách mật khẩu" in said


# ---- build ----------------------------------------------------------------------------------------------

async def test_build_reads_the_key_from_the_environment(tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                                        fake_mailcow: FakeMailcow) -> None:
    monkeypatch.delenv("EDUDESK_MAILCOW_API_KEY", raising=False)
    with pytest.raises(ConfigError):
        make_provisioner(make_settings(tmp_path, provisioning={"mailcow": {"url": fake_mailcow.url}}), FakeClock(),
                         "mailcow")
    monkeypatch.setenv("EDUDESK_MAILCOW_API_KEY", DEFAULT_KEY)  # read when the settings are loaded
    settings = make_settings(tmp_path, provisioning={"mailcow": {"url": fake_mailcow.url}})
    provisioner = make_provisioner(settings, FakeClock(), "mailcow")
    try:
        assert provisioner.name == "mailcow" and await provisioner.lookup(ADDRESS) is None
    finally:
        await provisioner.close()


# ---- restore: a deletion undone within its grace period -------------------------------------------------

async def test_restore_allows_sign_in_again_with_the_password_it_had(fake_mailcow: FakeMailcow,
                                                                      mailcow: MailcowProvisioner) -> None:
    await mailcow.create(spec(), PASSWORD)
    stored = fake_mailcow.mailboxes[ADDRESS].password_hash
    assert await mailcow.suspend(ADDRESS) == "suspended"
    assert not fake_mailcow.signs_in(ADDRESS, PASSWORD)

    assert await mailcow.restore(ADDRESS) == "restored"

    assert fake_mailcow.calls_to("edit/mailbox")[-1].body == {"items": [ADDRESS], "attr": {"active": "1"}}
    box = fake_mailcow.mailboxes[ADDRESS]
    assert (box.active, box.password_hash, box.force_pw_update) == (1, stored, "1")  # the same salted hash
    assert fake_mailcow.signs_in(ADDRESS, PASSWORD)
    entry = await mailcow.lookup(ADDRESS)
    assert entry is not None and entry.state == "active" and entry.key == "7:abc123"


async def test_restore_of_a_mailbox_never_suspended_is_harmless(fake_mailcow: FakeMailcow,
                                                                mailcow: MailcowProvisioner) -> None:
    await mailcow.create(spec(), PASSWORD)

    assert await mailcow.restore(ADDRESS) == "restored"

    assert fake_mailcow.signs_in(ADDRESS, PASSWORD)
    assert fake_mailcow.mailboxes[ADDRESS].tags == ["edudesk-key:7:abc123", "edudesk-person:HS001"]


async def test_restore_of_an_absent_mailbox_is_absent(fake_mailcow: FakeMailcow,
                                                      mailcow: MailcowProvisioner) -> None:
    assert await mailcow.restore("nobody@school.test") == "absent"
    fake_mailcow.unknown_domain = "access_denied"  # mailcow 2024+: the same answer for a domain it lacks
    assert await mailcow.restore("an.nguyen@other.test") == "absent"
    assert not fake_mailcow.mailboxes
