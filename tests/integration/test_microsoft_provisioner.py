"""GraphProvisioner against the fake identity platform and Graph (tests/fakes/microsoft_graph.py).

Time is virtual: the fake reads `VirtualTime.now` and the provisioner sleeps through `VirtualTime.sleep`, which
moves it, so Retry-After waits of seconds cost nothing and the waits themselves can be asserted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest

from edudesk.core.config import MicrosoftBackendSettings, Settings
from edudesk.core.errors import ConfigError
from edudesk.core.ports import AccountSpec, AddressTaken, FakeClock, ProvisionError
from edudesk.directories import make_provisioner
from edudesk.directories.microsoft import GraphProvisioner, build, graph_upn, mail_nickname
from tests.fakes.microsoft_graph import CLIENT_ID, CLIENT_SECRET, TENANT, FakeGraph, Throttle

PASSWORD = "Mat-Khau-9x!"
NEW_PASSWORD = "Moi-Hon-2025#"
ADDRESS = "an.nguyen@school.test"


class VirtualTime:
    """Seconds that pass only when the provisioner sleeps; every wait is recorded."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.waits: list[float] = []

    def now(self) -> float:
        """The current virtual second."""
        return self.t

    async def sleep(self, seconds: float) -> None:
        """Move time instead of sleeping."""
        self.waits.append(seconds)
        self.t += seconds
        await asyncio.sleep(0)


def spec(address: str = ADDRESS, **overrides: Any) -> AccountSpec:
    """A staff account for Nguyễn Văn An under request 7."""
    values: dict[str, Any] = dict(address=address, full_name="Nguyễn Văn An", population="staff",
                                  person_id="GV001", given_name="An", family_name="Nguyễn", request_id=7,
                                  key="7:GV001")
    values.update(overrides)
    return AccountSpec(**values)


@pytest.fixture
def vt() -> VirtualTime:
    """Virtual time shared by the fake and the provisioner."""
    return VirtualTime()


@pytest.fixture
async def fake(vt: VirtualTime) -> AsyncIterator[FakeGraph]:
    """The fake tenant on virtual time."""
    graph = await FakeGraph(now=vt.now).start()
    yield graph
    await graph.stop()


@pytest.fixture
def clock() -> FakeClock:
    """The provisioner's clock (token expiry)."""
    return FakeClock()


@pytest.fixture
def make(fake: FakeGraph, vt: VirtualTime, clock: FakeClock) -> Callable[..., GraphProvisioner]:
    """Provisioners pointed at the fake; closed by the `graph` fixture or the test."""
    def factory(secret: str = CLIENT_SECRET, **overrides: Any) -> GraphProvisioner:
        values: dict[str, Any] = dict(tenant_id=TENANT, client_id=CLIENT_ID, graph_url=fake.url,
                                      login_url=fake.url, max_retries=3)
        values.update(overrides)
        return GraphProvisioner(MicrosoftBackendSettings(**values), secret, clock, sleep=vt.sleep, backoff=0.5)
    return factory


@pytest.fixture
async def graph(make: Callable[..., GraphProvisioner]) -> AsyncIterator[GraphProvisioner]:
    """The provisioner under test."""
    provisioner = make()
    yield provisioner
    await provisioner.close()


async def test_create_sends_entra_fields_and_the_user_signs_in(graph: GraphProvisioner, fake: FakeGraph) -> None:
    assert await graph.create(spec(), PASSWORD) == "created"
    [post] = fake.sent("POST")
    assert post.body == {
        "accountEnabled": True, "displayName": "Nguyễn Văn An", "mailNickname": "an.nguyen",
        "userPrincipalName": ADDRESS, "usageLocation": "VN", "givenName": "An", "surname": "Nguyễn",
        "employeeId": "GV001", "onPremisesExtensionAttributes": {"extensionAttribute1": "7:GV001"},
        "passwordProfile": {"password": PASSWORD, "forceChangePasswordNextSignIn": True}}
    assert fake.signs_in(ADDRESS, PASSWORD)
    entry = await graph.lookup(ADDRESS)
    assert entry is not None and (entry.state, entry.key, entry.person_id) == ("active", "7:GV001", "GV001")
    assert entry.full_name == "Nguyễn Văn An" and entry.backend_id == fake.user(ADDRESS)["id"]  # type: ignore[index]


async def test_accented_address_becomes_an_ascii_upn_and_nickname(graph: GraphProvisioner, fake: FakeGraph) -> None:
    assert graph_upn("Đức.Trần@School.test") == "duc.tran@school.test"
    assert mail_nickname("nguyen van.an@school.test") == "nguyenvan.an"
    assert await graph.create(spec("Đức.Trần@school.test", force_change=False), PASSWORD) == "created"
    [post] = fake.sent("POST")
    assert post.body["userPrincipalName"] == "duc.tran@school.test"
    assert post.body["mailNickname"] == "duc.tran"
    assert post.body["passwordProfile"]["forceChangePasswordNextSignIn"] is False


async def test_long_person_id_goes_to_extension_attribute_2(graph: GraphProvisioner, fake: FakeGraph) -> None:
    long_id = "SV-2025-00012345678"  # 19 characters: employeeId takes 16
    assert await graph.create(spec(person_id=long_id), PASSWORD) == "created"
    [post] = fake.sent("POST")
    assert "employeeId" not in post.body
    assert post.body["onPremisesExtensionAttributes"] == {"extensionAttribute1": "7:GV001",
                                                          "extensionAttribute2": long_id}
    entry = await graph.lookup(ADDRESS)
    assert entry is not None and entry.person_id == long_id


async def test_create_twice_with_the_same_key_links_without_a_second_user(
        graph: GraphProvisioner, fake: FakeGraph) -> None:
    assert await graph.create(spec(), PASSWORD) == "created"
    assert await graph.create(spec(), NEW_PASSWORD) == "linked"
    assert len(fake.users) == 1 and len(fake.sent("POST")) == 1
    assert fake.signs_in(ADDRESS, NEW_PASSWORD)


async def test_same_person_under_another_request_links_and_gets_the_key(
        graph: GraphProvisioner, fake: FakeGraph) -> None:
    fake.add_user(ADDRESS, employee_id="GV001")  # made by hand for the same teacher
    assert await graph.create(spec(key="9:GV001"), PASSWORD) == "linked"
    user = fake.user(ADDRESS)
    assert user is not None and user["onPremisesExtensionAttributes"]["extensionAttribute1"] == "9:GV001"
    assert user["accountEnabled"] is True and fake.signs_in(ADDRESS, PASSWORD)


async def test_taken_address_raises_address_taken(graph: GraphProvisioner, fake: FakeGraph) -> None:
    fake.add_user(ADDRESS, employee_id="GV999")
    with pytest.raises(AddressTaken) as caught:
        await graph.create(spec(), PASSWORD)
    assert caught.value.address == ADDRESS and "GV999" in caught.value.message
    assert fake.sent("POST") == [] and fake.signs_in(ADDRESS, "Khac-Mat-Khau-1")  # untouched


async def test_object_conflict_on_create_looks_up_then_raises_address_taken(
        graph: GraphProvisioner, fake: FakeGraph) -> None:
    fake.add_user_on_next_create(ADDRESS, employee_id="GV999")  # someone else wins the race
    with pytest.raises(AddressTaken):
        await graph.create(spec(), PASSWORD)
    assert len(fake.sent("POST")) == 1 and len(fake.users) == 1


async def test_object_conflict_with_our_own_key_links(graph: GraphProvisioner, fake: FakeGraph) -> None:
    fake.add_user_on_next_create(ADDRESS, key="7:GV001")  # another worker of the same job got there first
    assert await graph.create(spec(), PASSWORD) == "linked"
    assert fake.signs_in(ADDRESS, PASSWORD)


async def test_soft_deleted_address_is_reported_deleted_and_taken(graph: GraphProvisioner, fake: FakeGraph) -> None:
    fake.add_user(ADDRESS, employee_id="GV001", key="7:GV001")
    deleted = fake.soft_delete(ADDRESS)
    assert deleted["userPrincipalName"] != ADDRESS  # Entra renames it, so Graph itself would accept a new user
    entry = await graph.lookup(ADDRESS)
    assert entry is not None and entry.state == "deleted" and entry.backend_id == deleted["id"]
    with pytest.raises(AddressTaken) as caught:
        await graph.create(spec(), PASSWORD)  # even for the same key: the address waits out its 30 days
    assert "thùng rác" in caught.value.message and fake.sent("POST") == []


async def test_a_deleted_longer_name_does_not_hold_the_address(graph: GraphProvisioner, fake: FakeGraph) -> None:
    fake.add_user("tuan.nguyen@school.test")
    fake.soft_delete("tuan.nguyen@school.test")  # endswith("an.nguyen@school.test") matches it
    fake.page_size = 1
    assert await graph.lookup(ADDRESS) is None
    assert await graph.create(spec(), PASSWORD) == "created"


async def test_deleted_lookup_follows_next_links(graph: GraphProvisioner, fake: FakeGraph) -> None:
    for local in ("tuan.nguyen", "xuan.nguyen", "an.nguyen"):
        fake.add_user(f"{local}@school.test")
        fake.soft_delete(f"{local}@school.test")
    fake.page_size = 1
    entry = await graph.lookup(ADDRESS)
    assert entry is not None and entry.state == "deleted"
    assert len(fake.sent("GET", "/v1.0/directory")) == 3


async def test_reset_sets_the_password_and_re_enables(graph: GraphProvisioner, fake: FakeGraph) -> None:
    await graph.create(spec(), PASSWORD)
    assert await graph.suspend(ADDRESS) == "suspended"
    await graph.reset_password(ADDRESS, NEW_PASSWORD, force_change=False)
    patch = fake.sent("PATCH")[-1]
    assert patch.body == {"accountEnabled": True,
                          "passwordProfile": {"password": NEW_PASSWORD, "forceChangePasswordNextSignIn": False}}
    assert fake.signs_in(ADDRESS, NEW_PASSWORD) and not fake.signs_in(ADDRESS, PASSWORD)


async def test_reset_of_an_absent_account_is_permanent(graph: GraphProvisioner) -> None:
    with pytest.raises(ProvisionError) as caught:
        await graph.reset_password(ADDRESS, NEW_PASSWORD)
    assert caught.value.permanent and caught.value.message == f"Không có tài khoản {ADDRESS} trên Microsoft 365."


async def test_suspend_disables_sign_in_and_absent_is_absent(graph: GraphProvisioner, fake: FakeGraph) -> None:
    await graph.create(spec(), PASSWORD)
    assert await graph.suspend(ADDRESS) == "suspended"
    assert fake.sent("PATCH")[-1].body == {"accountEnabled": False}
    assert not fake.signs_in(ADDRESS, PASSWORD)
    entry = await graph.lookup(ADDRESS)
    assert entry is not None and entry.state == "suspended"
    assert await graph.suspend("nobody@school.test") == "absent"


async def test_delete_then_lookup_is_deleted_and_delete_again_is_absent(
        graph: GraphProvisioner, fake: FakeGraph) -> None:
    await graph.create(spec(), PASSWORD)
    assert await graph.delete(ADDRESS) == "deleted"
    entry = await graph.lookup(ADDRESS)
    assert entry is not None and entry.state == "deleted" and entry.key == "7:GV001"
    assert await graph.delete(ADDRESS) == "absent"
    assert await graph.suspend(ADDRESS) == "absent"


async def test_throttling_waits_the_retry_after_then_succeeds(
        graph: GraphProvisioner, fake: FakeGraph, vt: VirtualTime) -> None:
    fake.throttle = Throttle(budget=2, window=10.0, start=vt.now())
    assert await graph.create(spec(), PASSWORD) == "created"  # GET user, GET deletedItems, then POST: 429
    assert fake.throttled == 1 and vt.waits == [10.0]
    assert fake.signs_in(ADDRESS, PASSWORD)


async def test_throttling_exhausted_is_transient_with_the_retry_after(
        graph: GraphProvisioner, fake: FakeGraph, vt: VirtualTime, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await graph.lookup(ADDRESS)  # a token first: the faults are Graph's, not the token endpoint's
    fake.fail_next(429, times=10, retry_after=7)
    with pytest.raises(ProvisionError) as caught:
        await graph.create(spec(), PASSWORD)
    assert not caught.value.permanent and caught.value.retry_after == 7
    assert vt.waits == [7, 7, 7] and fake.throttled == 4  # max_retries = 3
    assert "thử lại" in caught.value.message
    assert PASSWORD not in caught.value.message and PASSWORD not in caplog.text


async def test_service_unavailable_backs_off_exponentially_then_succeeds(
        graph: GraphProvisioner, fake: FakeGraph, vt: VirtualTime) -> None:
    await graph.lookup(ADDRESS)
    fake.fail_next(503, times=2)
    fake.fail_next(504, times=1)
    assert await graph.create(spec(), PASSWORD) == "created"
    assert len(vt.waits) == 3
    for wait, base in zip(vt.waits, (0.5, 1.0, 2.0), strict=True):
        assert base <= wait <= base * 1.5  # doubling, with up to 50 % jitter


async def test_weak_password_is_permanent_and_never_shown(
        graph: GraphProvisioner, fake: FakeGraph, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    weak = "abcdefgh1"  # two classes of four
    with pytest.raises(ProvisionError) as caught:
        await graph.create(spec(), weak)
    error = caught.value
    assert error.permanent and ADDRESS in error.message and "độ phức tạp" in error.message
    assert weak not in error.message and weak not in str(error) and weak not in caplog.text
    assert fake.users == {}


async def test_expired_token_is_renewed_once_on_401(graph: GraphProvisioner, fake: FakeGraph) -> None:
    await graph.create(spec(), PASSWORD)
    assert fake.token_requests == 1
    fake.expire_tokens()  # revoked early: the cached token still looks valid to edudesk
    assert (await graph.suspend(ADDRESS)) == "suspended"
    assert fake.token_requests == 2


async def test_token_is_cached_until_near_expiry(graph: GraphProvisioner, fake: FakeGraph, clock: FakeClock) -> None:
    for _ in range(3):
        await graph.lookup(ADDRESS)
    assert fake.token_requests == 1
    clock.advance(timedelta(minutes=54))  # 3599 s lifetime, renewed 5 minutes early: still good
    await graph.lookup(ADDRESS)
    assert fake.token_requests == 1
    clock.advance(timedelta(minutes=1))
    await graph.lookup(ADDRESS)
    assert fake.token_requests == 2


async def test_concurrent_creates_fetch_one_token(graph: GraphProvisioner, fake: FakeGraph) -> None:
    specs = [spec(f"hs{i}@school.test", person_id=f"HS{i}", key=f"7:HS{i}") for i in range(12)]
    assert await asyncio.gather(*(graph.create(s, PASSWORD) for s in specs)) == ["created"] * 12
    assert fake.token_requests == 1 and len(fake.users) == 12


async def test_wrong_client_secret_is_permanent_and_keeps_the_secret_out(
        make: Callable[..., GraphProvisioner]) -> None:
    provisioner = make(secret="wrong-secret-value")
    try:
        with pytest.raises(ProvisionError) as caught:
            await provisioner.lookup(ADDRESS)
    finally:
        await provisioner.close()
    assert caught.value.permanent and "AADSTS7000215" in caught.value.message
    assert "wrong-secret-value" not in caught.value.message and CLIENT_SECRET not in caught.value.message


async def test_missing_password_permission_is_permanent(graph: GraphProvisioner, fake: FakeGraph) -> None:
    await graph.create(spec(), PASSWORD)  # creating with a password needs only User.ReadWrite.All
    fake.roles.discard("User-PasswordProfile.ReadWrite.All")
    with pytest.raises(ProvisionError) as caught:
        await graph.reset_password(ADDRESS, NEW_PASSWORD)
    assert caught.value.permanent and "User-PasswordProfile.ReadWrite.All" in caught.value.message
    assert "Authorization_RequestDenied" in caught.value.message


async def test_unverified_domain_is_a_permanent_refusal(graph: GraphProvisioner) -> None:
    with pytest.raises(ProvisionError) as caught:
        await graph.create(spec("an.nguyen@other.test"), PASSWORD)
    assert caught.value.permanent and "chưa được xác minh" in caught.value.message


async def test_persistent_401_is_permanent_after_one_renewal(graph: GraphProvisioner, fake: FakeGraph) -> None:
    await graph.lookup(ADDRESS)
    fake.token_lifetime = 0  # every new token is already expired when Graph sees it
    fake.expire_tokens()
    with pytest.raises(ProvisionError) as caught:
        await graph.lookup(ADDRESS)
    assert caught.value.permanent and "InvalidAuthenticationToken" in caught.value.message
    assert fake.token_requests == 2


async def test_connection_refused_is_transient(make: Callable[..., GraphProvisioner], fake: FakeGraph) -> None:
    provisioner = make(graph_url="http://127.0.0.1:9", max_retries=1)  # discard port: nothing listens
    try:
        with pytest.raises(ProvisionError) as caught:
            await provisioner.lookup(ADDRESS)
    finally:
        await provisioner.close()
    assert not caught.value.permanent and caught.value.retry_after is not None


def microsoft_settings(settings_factory: Callable[..., Settings], **values: Any) -> Settings:
    """Settings with [provisioning] backend = "microsoft"."""
    return settings_factory(provisioning={"backend": "microsoft", "microsoft": values})


def test_build_reads_the_secret_from_the_environment(
        settings_factory: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDUDESK_GRAPH_CLIENT_SECRET", raising=False)
    with pytest.raises(ConfigError, match="EDUDESK_GRAPH_CLIENT_SECRET"):
        build(microsoft_settings(settings_factory, tenant_id=TENANT, client_id=CLIENT_ID), FakeClock())
    monkeypatch.setenv("EDUDESK_GRAPH_CLIENT_SECRET", CLIENT_SECRET)  # read when the settings are loaded
    settings = microsoft_settings(settings_factory, tenant_id=TENANT, client_id=CLIENT_ID)
    provisioner = make_provisioner(settings, FakeClock())
    assert isinstance(provisioner, GraphProvisioner) and provisioner.name == "microsoft"


def test_build_refuses_without_tenant_or_with_a_bad_usage_location(
        settings_factory: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDUDESK_GRAPH_CLIENT_SECRET", CLIENT_SECRET)
    with pytest.raises(ConfigError, match="tenant_id"):
        build(microsoft_settings(settings_factory, client_id=CLIENT_ID), FakeClock())
    with pytest.raises(ConfigError, match="usage_location"):
        build(microsoft_settings(settings_factory, tenant_id=TENANT, client_id=CLIENT_ID, usage_location="VNM"),
              FakeClock())


# -- restore: a deletion undone within its grace period ------------------------------------------------------


async def test_restore_enables_sign_in_with_the_password_it_had(graph: GraphProvisioner, fake: FakeGraph) -> None:
    await graph.create(spec(), PASSWORD)
    assert await graph.suspend(ADDRESS) == "suspended"
    assert not fake.signs_in(ADDRESS, PASSWORD)
    assert await graph.restore(ADDRESS) == "restored"
    assert fake.sent("PATCH")[-1].body == {"accountEnabled": True}  # no passwordProfile: the password stands
    user = fake.user(ADDRESS)
    assert user is not None and user["accountEnabled"] is True
    assert user["passwordProfile"] == {"forceChangePasswordNextSignIn": True}
    assert fake.signs_in(ADDRESS, PASSWORD)
    entry = await graph.lookup(ADDRESS)
    assert entry is not None and entry.state == "active"


async def test_restore_of_a_user_never_suspended_is_harmless(graph: GraphProvisioner, fake: FakeGraph) -> None:
    await graph.create(spec(), PASSWORD)
    assert await graph.restore(ADDRESS) == "restored"
    assert fake.signs_in(ADDRESS, PASSWORD)
    user = fake.user(ADDRESS)
    assert user is not None and user["employeeId"] == "GV001"
    assert user["onPremisesExtensionAttributes"]["extensionAttribute1"] == "7:GV001"


async def test_restore_of_an_absent_or_deleted_address_is_absent(graph: GraphProvisioner, fake: FakeGraph) -> None:
    assert await graph.restore("nobody@school.test") == "absent"
    await graph.create(spec(), PASSWORD)
    await graph.delete(ADDRESS)
    assert await graph.restore(ADDRESS) == "absent"  # in deletedItems: undeleting is not restore's to do
    assert fake.user(ADDRESS) is None
