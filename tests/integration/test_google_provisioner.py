"""GoogleProvisioner against the fake Workspace (tests/fakes/google_directory.py) over real HTTP.

The fake checks the JWT assertion with the service account's public key and answers with Google's
validation rules and error shapes; time (token expiry, quota windows, the undelete window, backoff) runs
on one FakeClock that the provisioner's sleep moves forward.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from edudesk.core.config import GoogleBackendSettings, Settings
from edudesk.core.errors import ConfigError
from edudesk.core.ports import AccountSpec, AddressTaken, FakeClock, ProvisionError
from edudesk.directories.google import GoogleProvisioner, ServiceAccount, build
from tests.fakes.google_directory import FakeGoogleDirectory

PASSWORD = "Mat-Khau-9x!"
OTHER = "Khac-Hoan-7q#"


def spec(local: str = "an.nguyen", **overrides: Any) -> AccountSpec:
    """A staff account for Nguyễn Văn An under request 7."""
    values: dict[str, Any] = dict(address=f"{local}@school.test", full_name="Nguyễn Văn An", population="staff",
                                  person_id="GV001", given_name="An", family_name="Nguyễn", request_id=7,
                                  key="7:GV001")
    values.update(overrides)
    return AccountSpec(**values)


class Sleeps:
    """The provisioner's sleep: records each delay and moves the shared clock by it (no real waiting)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.clock.advance(timedelta(seconds=seconds))
        await asyncio.sleep(0)


@pytest.fixture
async def fake(clock: FakeClock) -> AsyncIterator[FakeGoogleDirectory]:
    """The fake Workspace on the test clock."""
    async with FakeGoogleDirectory(clock=clock) as server:
        yield server


@pytest.fixture
def sleeps(clock: FakeClock) -> Sleeps:
    """Recorded backoff delays."""
    return Sleeps(clock)


@pytest.fixture
async def make(fake: FakeGoogleDirectory, clock: FakeClock, sleeps: Sleeps,
               tmp_path: Path) -> AsyncIterator[Callable[..., GoogleProvisioner]]:
    """Build provisioners pointed at the fake (settings overridable); all closed at the end."""
    made: list[GoogleProvisioner] = []
    key_file = fake.write_service_account(tmp_path / "sa.json")

    def factory(account: ServiceAccount | None = None, sleep: Any = None, **overrides: Any) -> GoogleProvisioner:
        config = GoogleBackendSettings(admin_subject="admin@school.test", api_url=fake.url,
                                       backoff_initial_seconds=0.5, max_retries=4).model_copy(update=overrides)
        provisioner = GoogleProvisioner(config, account or ServiceAccount.parse(str(key_file)), clock,
                                        sleep=sleep or sleeps)
        made.append(provisioner)
        return provisioner

    yield factory
    for provisioner in made:
        await provisioner.close()


@pytest.fixture
def google(make: Callable[..., GoogleProvisioner]) -> GoogleProvisioner:
    """A provisioner with the default settings."""
    return make()


# -- create and link ----------------------------------------------------------------------------------------


async def test_created_user_carries_org_unit_first_sign_in_change_and_external_ids(
        google: GoogleProvisioner, fake: FakeGoogleDirectory) -> None:
    assert await google.create(spec(), PASSWORD) == "created"
    assert await google.create(spec("binh.tran", population="student", person_id="SV123", key="7:SV123",
                                    full_name="Trần Thị Bình", given_name="", family_name="",
                                    force_change=False), OTHER) == "created"
    staff, student = [call.body for call in fake.api_calls("POST")]
    assert staff["orgUnitPath"] == "/Staff" and student["orgUnitPath"] == "/Students"
    assert staff["changePasswordAtNextLogin"] is True and student["changePasswordAtNextLogin"] is False
    assert staff["name"] == {"givenName": "An", "familyName": "Nguyễn"}
    assert student["name"] == {"givenName": "Thị Bình", "familyName": "Trần"}  # split in Vietnamese order
    assert staff["externalIds"] == [{"type": "custom", "customType": "edudesk", "value": "7:GV001"},
                                    {"type": "organization", "value": "GV001"}]
    user = fake.user("an.nguyen@school.test")
    assert user is not None and user.password == PASSWORD and user.org_unit == "/Staff"
    entry = await google.lookup("an.nguyen@school.test")
    assert entry is not None
    assert (entry.state, entry.key, entry.person_id, entry.full_name) == ("active", "7:GV001", "GV001", "An Nguyễn")


async def test_same_key_twice_links_without_a_second_user(google: GoogleProvisioner,
                                                         fake: FakeGoogleDirectory) -> None:
    assert await google.create(spec(), PASSWORD) == "created"
    assert await google.create(spec(), OTHER) == "linked"
    assert len(fake.api_calls("POST")) == 1 and len(fake.users) == 1
    user = fake.user("an.nguyen@school.test")
    assert user is not None and user.password == OTHER and not user.suspended


async def test_same_person_under_another_request_links(google: GoogleProvisioner) -> None:
    await google.create(spec(), PASSWORD)
    assert await google.create(spec(key="9:GV001", request_id=9), OTHER) == "linked"


async def test_someone_elses_address_raises_address_taken(google: GoogleProvisioner,
                                                          fake: FakeGoogleDirectory) -> None:
    fake.add_user("an.nguyen@school.test", password="Theirs-123",
                  external_ids=[{"type": "organization", "value": "GV999"}])
    with pytest.raises(AddressTaken) as caught:
        await google.create(spec(), PASSWORD)
    assert caught.value.address == "an.nguyen@school.test" and "GV999" in caught.value.message
    user = fake.user("an.nguyen@school.test")
    assert user is not None and user.password == "Theirs-123"
    assert not fake.api_calls("POST") and not fake.api_calls("PATCH")


async def test_concurrent_creates_of_one_address_give_one_user_and_one_address_taken(
        google: GoogleProvisioner, fake: FakeGoogleDirectory) -> None:
    results = await asyncio.gather(google.create(spec(), PASSWORD),
                                   google.create(spec(person_id="GV002", key="8:GV002"), OTHER),
                                   return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["AddressTaken", "str"]
    assert "created" in results and len(fake.users) == 1


async def test_insert_whose_answer_was_lost_counts_as_created(google: GoogleProvisioner,
                                                              fake: FakeGoogleDirectory) -> None:
    fake.lose_next()  # the first lookup is carried out, its answer lost: it is asked again
    await google.lookup("nobody@school.test")
    fake.lose_next()  # the insert goes through, the answer is a 503; the retry meets a 409 of its own making
    assert await google.create(spec(), PASSWORD) == "created"
    assert [c.status for c in fake.api_calls("POST")] == [503, 409]
    assert len(fake.users) == 1


# -- soft delete --------------------------------------------------------------------------------------------


async def test_soft_deleted_address_is_looked_up_as_deleted_and_never_reused(
        google: GoogleProvisioner, fake: FakeGoogleDirectory, clock: FakeClock) -> None:
    await google.create(spec(), PASSWORD)
    assert await google.delete("an.nguyen@school.test") == "deleted"
    clock.advance(timedelta(minutes=5))  # past any cache: the deleted list is asked for again
    entry = await google.lookup("an.nguyen@school.test")
    assert entry is not None and entry.state == "deleted" and entry.key == "7:GV001"
    list_call = fake.api_calls("GET")[-1]
    assert list_call.query["showDeleted"] == "true" and list_call.query["customer"] == "my_customer"
    for taker in (spec(person_id="SV777", key="8:SV777"), spec()):
        with pytest.raises(AddressTaken):
            await google.create(taker, OTHER)
    assert len(fake.api_calls("POST")) == 1  # Google itself would take the address again; edudesk does not


async def test_deleted_address_is_found_past_the_first_page(google: GoogleProvisioner,
                                                            fake: FakeGoogleDirectory) -> None:
    for number in range(520):
        fake.add_user(f"left{number}@school.test").deleted_at = fake.clock.now()
    entry = await google.lookup("left7@school.test")
    assert entry is not None and entry.state == "deleted"
    assert len([c for c in fake.api_calls("GET") if c.query.get("showDeleted")]) == 2
    assert await google.lookup("left519@school.test") is not None  # from the same listing, no new calls
    assert len([c for c in fake.api_calls("GET") if c.query.get("showDeleted")]) == 2


async def test_address_is_free_again_after_the_undelete_window(google: GoogleProvisioner,
                                                               clock: FakeClock) -> None:
    await google.create(spec(), PASSWORD)
    await google.delete("an.nguyen@school.test")
    clock.advance(timedelta(days=21))
    assert await google.lookup("an.nguyen@school.test") is None
    assert await google.create(spec(), OTHER) == "created"


# -- reset, suspend, delete ---------------------------------------------------------------------------------


async def test_reset_sets_the_password_and_lifts_a_suspension(google: GoogleProvisioner,
                                                              fake: FakeGoogleDirectory) -> None:
    await google.create(spec(), PASSWORD)
    assert await google.suspend("an.nguyen@school.test") == "suspended"
    entry = await google.lookup("an.nguyen@school.test")
    assert entry is not None and entry.state == "suspended"
    await google.reset_password("an.nguyen@school.test", OTHER, force_change=False)
    assert fake.api_calls("PATCH")[-1].body == {"password": OTHER, "changePasswordAtNextLogin": False,
                                                "suspended": False}
    user = fake.user("an.nguyen@school.test")
    assert user is not None and (user.password, user.suspended, user.change_password) == (OTHER, False, False)


async def test_reset_of_an_absent_account_is_permanent(google: GoogleProvisioner) -> None:
    with pytest.raises(ProvisionError) as caught:
        await google.reset_password("ghost@school.test", PASSWORD)
    assert caught.value.permanent and "ghost@school.test" in caught.value.message


async def test_suspend_and_delete_of_absent_accounts_answer_absent(google: GoogleProvisioner) -> None:
    assert await google.suspend("ghost@school.test") == "absent"
    await google.create(spec(), PASSWORD)
    assert await google.delete("an.nguyen@school.test") == "deleted"
    assert await google.delete("an.nguyen@school.test") == "absent"
    assert await google.suspend("an.nguyen@school.test") == "absent"


# -- throttling and failures --------------------------------------------------------------------------------


async def test_throttled_calls_are_retried_with_growing_backoff(google: GoogleProvisioner,
                                                                fake: FakeGoogleDirectory, sleeps: Sleeps) -> None:
    fake.throttle_next(3)
    assert await google.create(spec(), PASSWORD) == "created"
    assert [c.status for c in fake.api_calls()][:4] == [403, 403, 403, 404]
    assert len(sleeps.delays) == 3
    for delay, base in zip(sleeps.delays, (0.5, 1.0, 2.0), strict=True):
        assert base <= delay <= 2 * base  # exponential, with jitter


async def test_per_window_quota_is_waited_out(make: Callable[..., GoogleProvisioner], fake: FakeGoogleDirectory,
                                              sleeps: Sleeps) -> None:
    fake.quota = (4, 10.0)  # four Directory calls per 10 s
    google = make(max_retries=6)
    for number in range(3):
        assert await google.create(spec(f"user{number}", key=f"7:{number}", person_id=f"P{number}"),
                                   PASSWORD) == "created"
    assert len(fake.users) == 3
    throttled = [c for c in fake.api_calls() if c.status == 403]
    assert throttled and all(c.status == 403 for c in throttled)
    assert sum(sleeps.delays) >= 10.0  # only waiting out the window let the calls through


async def test_exhausted_retries_raise_a_transient_error(make: Callable[..., GoogleProvisioner],
                                                         fake: FakeGoogleDirectory) -> None:
    fake.throttle_next(100, reason="quotaExceeded")
    google = make(max_retries=3, backoff_initial_seconds=0.001, sleep=asyncio.sleep)  # real, tiny waits
    with pytest.raises(ProvisionError) as caught:
        await google.create(spec(), PASSWORD)
    assert not caught.value.permanent and caught.value.retry_after is not None and caught.value.retry_after > 0
    assert len(fake.api_calls()) == 4 and "an.nguyen@school.test" in caught.value.message


async def test_server_errors_are_retried(google: GoogleProvisioner, fake: FakeGoogleDirectory) -> None:
    fake.fail_next(503, count=2)
    assert await google.create(spec(), PASSWORD) == "created"


# -- tokens -------------------------------------------------------------------------------------------------


async def test_token_is_cached_then_renewed_when_it_expires(google: GoogleProvisioner, fake: FakeGoogleDirectory,
                                                            clock: FakeClock) -> None:
    await google.create(spec(), PASSWORD)
    await google.suspend("an.nguyen@school.test")
    assert fake.token_requests == 1
    clock.advance(timedelta(minutes=59, seconds=30))  # inside the safety margin before expiry
    await google.suspend("an.nguyen@school.test")
    assert fake.token_requests == 2


async def test_revoked_token_is_refreshed_once(google: GoogleProvisioner, fake: FakeGoogleDirectory) -> None:
    await google.create(spec(), PASSWORD)
    fake.revoke_tokens()
    await google.reset_password("an.nguyen@school.test", OTHER)
    assert fake.token_requests == 2
    assert [c.status for c in fake.api_calls("PATCH")] == [401, 200]


async def test_key_the_token_endpoint_does_not_know_is_refused_permanently(
        make: Callable[..., GoogleProvisioner], fake: FakeGoogleDirectory) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    forged = ServiceAccount.parse(json.dumps(fake.service_account_info(private_key=pem)))
    with pytest.raises(ProvisionError) as caught:
        await make(account=forged).lookup("an.nguyen@school.test")
    assert caught.value.permanent and "invalid_grant" in caught.value.message
    assert not fake.api_calls()


async def test_subject_without_admin_rights_is_refused_permanently(make: Callable[..., GoogleProvisioner]) -> None:
    with pytest.raises(ProvisionError) as caught:
        await make(admin_subject="teacher@school.test").create(spec(), PASSWORD)
    assert caught.value.permanent and "không có quyền" in caught.value.message


# -- refusals -----------------------------------------------------------------------------------------------


async def test_invalid_password_is_permanent_and_never_shown(google: GoogleProvisioner, fake: FakeGoogleDirectory,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake.throttle_next(1)  # a retry is logged too
    weak = "Mậtkhẩu-có-dấu-1"  # long enough, not ASCII
    with pytest.raises(ProvisionError) as caught:
        await google.create(spec(), weak)
    assert caught.value.permanent
    assert "mật khẩu của an.nguyen@school.test" in caught.value.message and "Invalid Password" in caught.value.message
    assert weak not in str(caught.value) and weak not in caplog.text and caplog.records
    assert fake.user("an.nguyen@school.test") is None


async def test_unknown_org_unit_is_permanent(make: Callable[..., GoogleProvisioner]) -> None:
    with pytest.raises(ProvisionError) as caught:
        await make(staff_org_unit="/Giao-vien").create(spec(), PASSWORD)
    assert caught.value.permanent and "orgUnitPath" in caught.value.message and "INVALID_OU_ID" in caught.value.message


async def test_domain_outside_the_workspace_is_permanent(google: GoogleProvisioner) -> None:
    with pytest.raises(ProvisionError) as caught:
        await google.create(spec(address="an@other.test"), PASSWORD)
    assert caught.value.permanent and "an@other.test" in caught.value.message


# -- build --------------------------------------------------------------------------------------------------


async def test_build_reads_the_key_from_the_environment_as_text_or_path(
        fake: FakeGoogleDirectory, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        settings_factory: Callable[..., Settings]) -> None:
    for source in (json.dumps(fake.service_account_info()), str(fake.write_service_account(tmp_path / "k.json"))):
        monkeypatch.setenv("EDUDESK_GOOGLE_CREDENTIALS", source)  # read when the settings are loaded
        settings = settings_factory(provisioning={"google": {"admin_subject": "admin@school.test",
                                                             "api_url": fake.url}})
        provisioner = build(settings, clock)
        try:
            assert await provisioner.lookup("an.nguyen@school.test") is None
        finally:
            await provisioner.close()


def test_build_refuses_missing_subject_or_key(settings_factory: Callable[..., Settings], clock: FakeClock,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDUDESK_GOOGLE_CREDENTIALS", raising=False)
    with pytest.raises(ConfigError):
        build(settings_factory(), clock)
    with pytest.raises(ConfigError):
        build(settings_factory(provisioning={"google": {"admin_subject": "admin@school.test"}}), clock)
    monkeypatch.setenv("EDUDESK_GOOGLE_CREDENTIALS", '{"type": "authorized_user"}')
    with pytest.raises(ConfigError):
        build(settings_factory(provisioning={"google": {"admin_subject": "admin@school.test"}}), clock)


# -- restore: a deletion undone within its grace period ------------------------------------------------------


async def test_restore_lifts_the_suspension_and_keeps_the_password(google: GoogleProvisioner,
                                                                    fake: FakeGoogleDirectory) -> None:
    await google.create(spec(), PASSWORD)
    assert await google.suspend("an.nguyen@school.test") == "suspended"
    assert not fake.signs_in("an.nguyen@school.test", PASSWORD)
    assert await google.restore("an.nguyen@school.test") == "restored"
    assert fake.api_calls("PATCH")[-1].body == {"suspended": False}  # no password, no other field on the wire
    user = fake.user("an.nguyen@school.test")
    assert user is not None and (user.suspended, user.password, user.change_password) == (False, PASSWORD, True)
    assert fake.signs_in("an.nguyen@school.test", PASSWORD)
    entry = await google.lookup("an.nguyen@school.test")
    assert entry is not None and entry.state == "active"


async def test_restore_of_a_user_never_suspended_is_harmless(google: GoogleProvisioner,
                                                             fake: FakeGoogleDirectory) -> None:
    await google.create(spec(), PASSWORD)
    assert await google.restore("an.nguyen@school.test") == "restored"
    assert fake.signs_in("an.nguyen@school.test", PASSWORD)
    user = fake.user("an.nguyen@school.test")
    assert user is not None and user.external_ids and user.org_unit == "/Staff"


async def test_restore_of_an_absent_or_deleted_address_is_absent(google: GoogleProvisioner,
                                                                 fake: FakeGoogleDirectory) -> None:
    assert await google.restore("ghost@school.test") == "absent"
    await google.create(spec(), PASSWORD)
    await google.delete("an.nguyen@school.test")
    assert await google.restore("an.nguyen@school.test") == "absent"  # undeleting is not restore's to do
    assert fake.user("an.nguyen@school.test") is None
