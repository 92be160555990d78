"""LdapProvisioner against a real private slapd (OpenLDAP 2.5, ppolicy), both flavours.

The "ad" flavour runs against slapd with a stand-in schema (tests/fixtures/ldap/ad-lite.ldif): that proves
the wire sequence (add disabled, unicodePwd as quoted UTF-16-LE, enable with pwdLastSet) and the
attribute names over ldaps://, not how Active Directory itself judges them (no password policy, no
sign-in with unicodePwd, userAccountControl is only a number to slapd).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest

from edudesk.core.config import LdapBackendSettings
from edudesk.core.errors import ConfigError
from edudesk.core.ports import AccountSpec, AddressTaken, ProvisionError
from edudesk.directories.ldap import LdapProvisioner, refusal
from tests.servers.slapd import SlapdServer, slapd_fixture  # noqa: F401

AD_CLASSES = ("top", "person", "organizationalPerson", "user")
PASSWORD = "Mat-Khau-9x!"


async def no_wait(_: float) -> None:
    """Retries without sleeping (the backoff itself is not under test here)."""


def settings_for(server: SlapdServer, **overrides: Any) -> LdapBackendSettings:
    """[provisioning.ldap] pointing at the test server, as the service account."""
    base = LdapBackendSettings(url=server.url, bind_dn=server.service_dn, staff_base=server.staff_base,
                               student_base=server.student_base, ca_file=server.ca_file, pool_size=2,
                               timeout_seconds=5.0)
    return base.model_copy(update=overrides)


def ad_settings(server: SlapdServer, **overrides: Any) -> LdapBackendSettings:
    """The "ad" flavour over ldaps:// with AD's attribute names."""
    values: dict[str, Any] = dict(url=server.ldaps_url, flavour="ad", object_classes=AD_CLASSES,
                                  rdn_attribute="cn", login_attribute="sAMAccountName")
    values.update(overrides)
    return settings_for(server, **values)


def spec(local: str = "an.nguyen", **overrides: Any) -> AccountSpec:
    """A staff account for Nguyễn Văn An under request 7."""
    values: dict[str, Any] = dict(address=f"{local}@school.test", full_name="Nguyễn Văn An", population="staff",
                                  person_id="GV001", given_name="An", family_name="Nguyễn", request_id=7,
                                  key="7:GV001")
    values.update(overrides)
    return AccountSpec(**values)


def text(entry: dict[str, list[Any]], name: str) -> str:
    """The first value of an attribute, decoded."""
    values = entry.get(name) or [b""]
    return bytes(values[0]).decode()


@pytest.fixture
async def ldap(slapd: SlapdServer) -> AsyncIterator[LdapProvisioner]:
    """An openldap-flavour provisioner bound as the service account over ldap://."""
    provisioner = LdapProvisioner(settings_for(slapd), slapd.service_password, sleep=no_wait)
    yield provisioner
    await provisioner.close()


@pytest.fixture
async def ad(slapd: SlapdServer) -> AsyncIterator[LdapProvisioner]:
    """An ad-flavour provisioner over ldaps:// (certificate checked against the test CA)."""
    provisioner = LdapProvisioner(ad_settings(slapd), slapd.service_password, sleep=no_wait)
    yield provisioner
    await provisioner.close()


async def test_created_entry_binds_with_its_new_password(ldap: LdapProvisioner, slapd: SlapdServer) -> None:
    assert await ldap.create(spec(), PASSWORD) == "created"
    dn = f"uid=an.nguyen,{slapd.staff_base}"
    assert slapd.can_bind(dn, PASSWORD)
    assert not slapd.can_bind(dn, "wrong")
    entry = slapd.entry(dn)
    assert entry is not None
    assert text(entry, "userPassword").startswith("{SSHA}")
    assert PASSWORD not in text(entry, "userPassword")
    assert (text(entry, "mail"), text(entry, "cn"), text(entry, "sn"), text(entry, "givenName")) == (
        "an.nguyen@school.test", "Nguyễn Văn An", "Nguyễn", "An")
    assert (text(entry, "employeeNumber"), text(entry, "description")) == ("GV001", "7:GV001")
    found = await ldap.lookup("an.nguyen@school.test")
    assert found is not None
    assert (found.state, found.key, found.person_id, found.backend_id, found.full_name) == (
        "active", "7:GV001", "GV001", dn, "Nguyễn Văn An")


async def test_students_go_under_the_student_base(ldap: LdapProvisioner, slapd: SlapdServer) -> None:
    await ldap.create(spec("hs.binh", population="student", person_id="HS042", key="8:HS042"), PASSWORD)
    assert slapd.can_bind(f"uid=hs.binh,{slapd.student_base}", PASSWORD)


async def test_create_twice_with_the_same_key_links_without_a_second_entry(
        ldap: LdapProvisioner, slapd: SlapdServer) -> None:
    assert await ldap.create(spec(), PASSWORD) == "created"
    assert await ldap.create(spec(person_id=""), "Second-Pass-2") == "linked"
    conn = slapd.connect()
    conn.search(slapd.suffix, "(mail=an.nguyen@school.test)", attributes=["1.1"])
    assert len(conn.response) == 1
    assert slapd.can_bind(f"uid=an.nguyen,{slapd.staff_base}", "Second-Pass-2")


async def test_taken_address_raises_address_taken(ldap: LdapProvisioner, slapd: SlapdServer) -> None:
    slapd.connect().add(f"uid=an.other,{slapd.staff_base}", attributes={
        "objectClass": "inetOrgPerson", "uid": "an.other", "cn": "Người Khác", "sn": "Khác",
        "mail": "an.nguyen@school.test", "employeeNumber": "GV999"})
    with pytest.raises(AddressTaken) as caught:
        await ldap.create(spec(), PASSWORD)
    assert caught.value.address == "an.nguyen@school.test"
    assert "GV999" in caught.value.message


async def test_sign_in_name_of_someone_else_raises_address_taken(ldap: LdapProvisioner, slapd: SlapdServer) -> None:
    # Same uid (the DN) under another address: slapd answers entryAlreadyExists (68) to the add.
    slapd.connect().add(f"uid=an.nguyen,{slapd.staff_base}", attributes={
        "objectClass": "inetOrgPerson", "uid": "an.nguyen", "cn": "Nguyễn Văn An", "sn": "Nguyễn",
        "mail": "an.nguyen@old.school.test"})
    with pytest.raises(AddressTaken):
        await ldap.create(spec(), PASSWORD)


async def test_reset_binds_with_the_new_password_and_not_the_old(ldap: LdapProvisioner, slapd: SlapdServer) -> None:
    await ldap.create(spec(), PASSWORD)
    await ldap.reset_password("an.nguyen@school.test", "Brand-New-3")
    dn = f"uid=an.nguyen,{slapd.staff_base}"
    assert slapd.can_bind(dn, "Brand-New-3")
    assert not slapd.can_bind(dn, PASSWORD)


async def test_reset_of_an_absent_account_is_permanent(ldap: LdapProvisioner) -> None:
    with pytest.raises(ProvisionError) as caught:
        await ldap.reset_password("nobody@school.test", PASSWORD)
    assert caught.value.permanent and "nobody@school.test" in caught.value.message


async def test_suspended_account_cannot_bind_until_reset(ldap: LdapProvisioner, slapd: SlapdServer) -> None:
    await ldap.create(spec(), PASSWORD)
    dn = f"uid=an.nguyen,{slapd.staff_base}"
    assert await ldap.suspend("an.nguyen@school.test") == "suspended"
    entry = slapd.entry(dn)
    assert entry is not None and text(entry, "pwdAccountLockedTime") == "000001010000Z"
    assert not slapd.can_bind(dn, PASSWORD)
    found = await ldap.lookup("an.nguyen@school.test")
    assert found is not None and found.state == "suspended"
    await ldap.reset_password("an.nguyen@school.test", "Back-Again-4")
    assert slapd.can_bind(dn, "Back-Again-4")
    found = await ldap.lookup("an.nguyen@school.test")
    assert found is not None and found.state == "active"


async def test_linking_a_suspended_own_entry_re_enables_it(ldap: LdapProvisioner, slapd: SlapdServer) -> None:
    await ldap.create(spec(), PASSWORD)
    await ldap.suspend("an.nguyen@school.test")
    assert await ldap.create(spec(), "Linked-Pass-5") == "linked"
    assert slapd.can_bind(f"uid=an.nguyen,{slapd.staff_base}", "Linked-Pass-5")


async def test_delete_then_lookup_is_none_and_delete_again_is_absent(ldap: LdapProvisioner) -> None:
    await ldap.create(spec(), PASSWORD)
    assert await ldap.delete("an.nguyen@school.test") == "deleted"
    assert await ldap.lookup("an.nguyen@school.test") is None
    assert await ldap.delete("an.nguyen@school.test") == "absent"
    assert await ldap.suspend("an.nguyen@school.test") == "absent"


async def test_force_change_sets_pwd_reset(ldap: LdapProvisioner, slapd: SlapdServer) -> None:
    await ldap.create(spec(), PASSWORD)
    await ldap.create(spec("binh.tran", person_id="GV002", key="7:GV002", force_change=False), PASSWORD)
    forced, free = slapd.entry(f"uid=an.nguyen,{slapd.staff_base}"), slapd.entry(f"uid=binh.tran,{slapd.staff_base}")
    assert forced is not None and text(forced, "pwdReset") == "TRUE"
    assert free is not None and "pwdReset" not in free
    await ldap.reset_password("an.nguyen@school.test", "No-Change-6", force_change=False)
    after = slapd.entry(f"uid=an.nguyen,{slapd.staff_base}")
    assert after is not None and "pwdReset" not in after


async def test_unknown_base_is_a_permanent_refusal_naming_the_address(slapd: SlapdServer) -> None:
    provisioner = LdapProvisioner(settings_for(slapd, staff_base=f"ou=nowhere,{slapd.suffix}"),
                                  slapd.service_password, sleep=no_wait)
    try:
        with pytest.raises(ProvisionError) as caught:
            await provisioner.create(spec(), PASSWORD)
    finally:
        await provisioner.close()
    assert caught.value.permanent
    assert "an.nguyen@school.test" in caught.value.message and "OU" in caught.value.message
    assert PASSWORD not in caught.value.message


async def test_wrong_service_password_is_permanent(slapd: SlapdServer) -> None:
    provisioner = LdapProvisioner(settings_for(slapd), "not-the-password", sleep=no_wait)
    try:
        with pytest.raises(ProvisionError) as caught:
            await provisioner.lookup("an.nguyen@school.test")
    finally:
        await provisioner.close()
    assert caught.value.permanent and "bind_dn" in caught.value.message


async def test_many_creates_share_the_pool(ldap: LdapProvisioner, slapd: SlapdServer) -> None:
    specs = [spec(f"gv{n:02d}", person_id=f"GV{n:03d}", key=f"9:GV{n:03d}") for n in range(20)]
    results = await asyncio.gather(*(ldap.create(item, f"{PASSWORD}{n}") for n, item in enumerate(specs)))
    assert results == ["created"] * 20
    assert all(slapd.can_bind(f"uid=gv{n:02d},{slapd.staff_base}", f"{PASSWORD}{n}") for n in range(20))


async def test_a_batched_lookup_answers_each_create_as_its_own_search_would(
        ldap: LdapProvisioner, slapd: SlapdServer) -> None:
    # Someone else's entry under the other base, and an own (suspended) one with its address in capitals.
    slapd.connect().add(f"uid=an.other,{slapd.staff_base}", attributes={
        "objectClass": "inetOrgPerson", "uid": "an.other", "cn": "Người Khác", "sn": "Khác",
        "mail": "hs.taken@school.test", "employeeNumber": "GV999"})
    assert await ldap.create(spec("hs.own", population="student", key="8:HS1"), PASSWORD) == "created"
    await ldap.suspend("hs.own@school.test")
    conn = slapd.connect()
    assert conn.modify(f"uid=hs.own,{slapd.student_base}", {"mail": [("MODIFY_REPLACE", ["HS.Own@School.test"])]})
    addresses = ["hs.taken@school.test", "hs.own@school.test", "hs.free@school.test"]
    await ldap.lookup_many(addresses)
    assert ldap._seen.keys() == set(addresses)  # one answer per address, from the two searches
    with pytest.raises(AddressTaken) as caught:
        await ldap.create(spec("hs.taken", population="student", key="8:HS2"), PASSWORD)
    assert "GV999" in caught.value.message
    assert await ldap.create(spec("hs.own", population="student", key="8:HS1"), "Again-Pass-4") == "linked"
    assert await ldap.create(spec("hs.free", population="student", key="8:HS3"), PASSWORD) == "created"
    assert not ldap._seen  # each answer used once; a later create searches afresh
    assert slapd.can_bind(f"uid=hs.own,{slapd.student_base}", "Again-Pass-4")  # linked, and unlocked
    assert slapd.can_bind(f"uid=hs.free,{slapd.student_base}", PASSWORD)


async def test_pool_reconnects_after_a_server_restart(ldap: LdapProvisioner, slapd: SlapdServer) -> None:
    await ldap.create(spec(), PASSWORD)
    slapd.stop()
    slapd.start()
    found = await ldap.lookup("an.nguyen@school.test")
    assert found is not None
    # The pooled connection died with the old process (ldap3 either notices that on its own or fails the
    # first request and the adapter retries): a success here is a new connection either way.
    await ldap.reset_password("an.nguyen@school.test", "After-Restart-7")
    assert slapd.can_bind(f"uid=an.nguyen,{slapd.staff_base}", "After-Restart-7")


async def test_server_down_is_transient_and_keeps_the_password_out(ldap: LdapProvisioner, slapd: SlapdServer) -> None:
    await ldap.lookup("an.nguyen@school.test")  # the pool holds a bound connection
    slapd.stop()
    with pytest.raises(ProvisionError) as caught:
        await ldap.create(spec(), PASSWORD)
    assert not caught.value.permanent and caught.value.retry_after
    assert "an.nguyen@school.test" in caught.value.message and PASSWORD not in caught.value.message
    slapd.start()
    assert await ldap.create(spec(), PASSWORD) == "created"


async def test_ad_flavour_refuses_ldap_without_tls(slapd: SlapdServer) -> None:
    with pytest.raises(ConfigError) as caught:
        LdapProvisioner(ad_settings(slapd, url=slapd.url), slapd.service_password)
    assert "ldaps://" in caught.value.message and "start_tls" in caught.value.message
    LdapProvisioner(ad_settings(slapd, url=slapd.url, start_tls=True), slapd.service_password)


async def test_ad_flavour_creates_disabled_sets_unicode_pwd_then_enables(
        ad: LdapProvisioner, slapd: SlapdServer) -> None:
    assert await ad.create(spec(), PASSWORD) == "created"
    dn = f"cn=an.nguyen,{slapd.staff_base}"
    entry = slapd.entry(dn)
    assert entry is not None
    assert bytes(entry["unicodePwd"][0]) == f'"{PASSWORD}"'.encode("utf-16-le")
    assert (text(entry, "userAccountControl"), text(entry, "pwdLastSet")) == ("512", "0")
    assert (text(entry, "sAMAccountName"), text(entry, "userPrincipalName")) == ("an.nguyen", "an.nguyen@school.test")
    assert text(entry, "displayName") == "Nguyễn Văn An"
    # The order slapd received: the add carries 514 and no password, then unicodePwd, then 512 + pwdLastSet.
    audit = slapd.audit_log
    added, password_set, enabled = (audit.index(mark) for mark in (
        "userAccountControl: 514", "replace: unicodePwd", "userAccountControl: 512"))
    assert added < password_set < enabled
    assert "unicodePwd" not in audit[:password_set]
    assert base64.b64encode(f'"{PASSWORD}"'.encode("utf-16-le")).decode() in audit  # (the audit log is ours)

    assert await ad.suspend("an.nguyen@school.test") == "suspended"
    entry = slapd.entry(dn)
    assert entry is not None and text(entry, "userAccountControl") == "514"
    found = await ad.lookup("an.nguyen@school.test")
    assert found is not None and found.state == "suspended"
    await ad.reset_password("an.nguyen@school.test", "Reset-Pass-8", force_change=False)
    entry = slapd.entry(dn)
    assert entry is not None
    assert (text(entry, "userAccountControl"), text(entry, "pwdLastSet")) == ("512", "-1")
    assert bytes(entry["unicodePwd"][0]) == '"Reset-Pass-8"'.encode("utf-16-le")
    assert await ad.create(spec(), PASSWORD) == "linked"
    assert await ad.delete("an.nguyen@school.test") == "deleted"
    assert await ad.lookup("an.nguyen@school.test") is None


async def test_ad_sam_account_name_is_cut_to_20_characters_and_stays_unique(
        ad: LdapProvisioner, slapd: SlapdServer) -> None:
    locals_ = ["nguyen.thi.thanh.huong", "nguyen.thi.thanh.huong2", "nguyen.thi.thanh.hu2", "tran.thi.ngoc.anh.b.x"]
    for n, local in enumerate(locals_):
        await ad.create(spec(local, person_id=f"GV{n:03d}", key=f"7:GV{n:03d}"), PASSWORD)
    names = [text(slapd.entry(f"cn={local},{slapd.staff_base}") or {}, "sAMAccountName") for local in locals_]
    # Cut to 20; the next one numbered; a short name that is already taken numbered too; no trailing dot.
    assert names == ["nguyen.thi.thanh.huo", "nguyen.thi.thanh.hu2", "nguyen.thi.thanh.hu3", "tran.thi.ngoc.anh.b"]
    assert all(len(name) <= 20 for name in names)


def test_ad_password_policy_refusal_is_permanent() -> None:
    error = refusal("an@school.test", 19, "constraintViolation",
                    "0000052D: Constraint violation - check_password_restrictions: the password is too short.")
    assert error.permanent and "chính sách mật khẩu" in error.message and "an@school.test" in error.message


def test_unwilling_to_perform_is_permanent() -> None:
    error = refusal("an@school.test", 53, "unwillingToPerform", "0000001F: SvcErr: DSID-031A12D2, problem 5003")
    assert error.permanent and "an@school.test" in error.message


# -- restore: a deletion undone within its grace period ------------------------------------------------------


async def test_restore_unlocks_a_suspended_entry_which_binds_with_the_password_it_had(
        ldap: LdapProvisioner, slapd: SlapdServer) -> None:
    await ldap.create(spec(), PASSWORD)
    dn = f"uid=an.nguyen,{slapd.staff_base}"
    before = slapd.entry(dn)
    assert await ldap.suspend("an.nguyen@school.test") == "suspended"
    assert not slapd.can_bind(dn, PASSWORD)
    assert await ldap.restore("an.nguyen@school.test") == "restored"
    after = slapd.entry(dn)
    assert before is not None and after is not None
    assert "pwdAccountLockedTime" not in after
    assert after["userPassword"] == before["userPassword"]  # the same hash: no new password was set
    assert after.get("pwdReset") == before.get("pwdReset")
    assert slapd.can_bind(dn, PASSWORD)
    found = await ldap.lookup("an.nguyen@school.test")
    assert found is not None and found.state == "active"


async def test_restore_of_an_entry_never_suspended_is_harmless(ldap: LdapProvisioner, slapd: SlapdServer) -> None:
    await ldap.create(spec(), PASSWORD)
    dn = f"uid=an.nguyen,{slapd.staff_base}"
    assert await ldap.restore("an.nguyen@school.test") == "restored"
    assert await ldap.restore("an.nguyen@school.test") == "restored"
    entry = slapd.entry(dn)
    assert entry is not None and "pwdAccountLockedTime" not in entry
    assert slapd.can_bind(dn, PASSWORD)


async def test_restore_of_an_absent_address_is_absent(ldap: LdapProvisioner, ad: LdapProvisioner) -> None:
    assert await ldap.restore("nobody@school.test") == "absent"
    assert await ad.restore("nobody@school.test") == "absent"


async def test_ad_flavour_restore_clears_accountdisable_and_leaves_unicode_pwd(
        ad: LdapProvisioner, slapd: SlapdServer) -> None:
    await ad.create(spec(), PASSWORD)
    dn = f"cn=an.nguyen,{slapd.staff_base}"
    assert await ad.suspend("an.nguyen@school.test") == "suspended"
    entry = slapd.entry(dn)
    assert entry is not None and text(entry, "userAccountControl") == "514"
    password_writes = slapd.audit_log.count("replace: unicodePwd")
    assert await ad.restore("an.nguyen@school.test") == "restored"
    entry = slapd.entry(dn)
    assert entry is not None and text(entry, "userAccountControl") == "512"
    assert bytes(entry["unicodePwd"][0]) == f'"{PASSWORD}"'.encode("utf-16-le")
    assert slapd.audit_log.count("replace: unicodePwd") == password_writes  # no password sent
    found = await ad.lookup("an.nguyen@school.test")
    assert found is not None and found.state == "active"


async def test_ad_flavour_restore_keeps_other_flags_and_an_enabled_account_enabled(
        ad: LdapProvisioner, slapd: SlapdServer) -> None:
    await ad.create(spec(), PASSWORD)
    dn = f"cn=an.nguyen,{slapd.staff_base}"
    assert await ad.restore("an.nguyen@school.test") == "restored"  # never suspended: stays 512
    entry = slapd.entry(dn)
    assert entry is not None and text(entry, "userAccountControl") == "512"
    # DONT_EXPIRE_PASSWORD (65536) set by the school's administrator survives a suspend and a restore.
    assert slapd.connect().modify(dn, {"userAccountControl": [("MODIFY_REPLACE", ["66048"])]})
    await ad.suspend("an.nguyen@school.test")
    entry = slapd.entry(dn)
    assert entry is not None and text(entry, "userAccountControl") == "66050"
    assert await ad.restore("an.nguyen@school.test") == "restored"
    entry = slapd.entry(dn)
    assert entry is not None and text(entry, "userAccountControl") == "66048"
    assert bytes(entry["unicodePwd"][0]) == f'"{PASSWORD}"'.encode("utf-16-le")
