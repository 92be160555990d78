"""LDAP directories through ldap3: OpenLDAP (inetOrgPerson, ppolicy) and Active Directory, over a pool of
bound connections each used by one worker thread at a time (`ldappool`)."""

from __future__ import annotations

import asyncio
import logging
import math
import random
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ldap3 import BASE, MODIFY_REPLACE, NONE, SUBTREE, Connection, Server, Tls
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from edudesk.core.config import LdapBackendSettings, Settings
from edudesk.core.errors import ConfigError
from edudesk.core.ports import AccountSpec, AddressTaken, Clock, DirectoryEntry, ProvisionError
from edudesk.directories.ldappool import Pool, Unreachable

log = logging.getLogger(__name__)
T = TypeVar("T")

LOCKED = "000001010000Z"  # ppolicy: locked until an administrator removes it
UAC_NORMAL, UAC_DISABLED = 512, 2  # userAccountControl: NORMAL_ACCOUNT, ACCOUNTDISABLE bit
SAM_MAX = 20
_TRANSIENT = {3, 51, 52, 80}  # timeLimitExceeded, busy, unavailable, other: worth asking again
_ATTEMPTS = 4
_BACKOFF = 0.25
_SEEN_SECONDS = 60.0  # how long a batched look-up stands in for the search before an add
_SEEN_MAX = 20_000  # entries kept at most (a list's worth); older ones are dropped first


def refusal(address: str, code: int, description: str, message: str) -> ProvisionError:
    """The permanent error for an LDAP result a retry cannot fix, in Vietnamese, naming the address."""
    what = f"{description} ({code}){': ' + message if message else ''}"
    if code == 19 and "0000052D" in message.upper():
        text = f"Active Directory từ chối mật khẩu của {address}: không đạt chính sách mật khẩu ({message})."
    elif code == 32:
        text = f"Không có đơn vị (OU) hay mục cha cho {address} trên máy chủ LDAP: {what}."
    elif code == 49:
        text = f"Máy chủ LDAP từ chối tài khoản dịch vụ của edudesk (sai bind_dn hoặc mật khẩu) khi xử lý {address}."
    elif code == 50:
        text = f"Tài khoản dịch vụ của edudesk không có quyền thay đổi {address} trên máy chủ LDAP: {what}."
    elif code == 53:
        text = (f"Máy chủ LDAP không chịu thực hiện thay đổi {address}: {what}. Active Directory chỉ nhận "
                "mật khẩu qua kết nối mã hoá và theo chính sách mật khẩu.")
    elif code in (17, 21, 65):
        text = f"Máy chủ LDAP không nhận thuộc tính của {address} (lược đồ, cấu hình object_classes): {what}."
    else:
        text = f"Máy chủ LDAP từ chối thay đổi {address}: {what}."
    return ProvisionError(text, permanent=True)


@dataclass(frozen=True)
class _Found:
    dn: str
    entry: DirectoryEntry
    control: int  # userAccountControl (AD), 0 elsewhere


class LdapProvisioner:
    """Entries `rdn_attribute=<local part>,<staff_base|student_base>` in OpenLDAP or Active Directory."""

    name = "ldap"

    def __init__(self, config: LdapBackendSettings, password: str,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if config.flavour not in ("openldap", "ad"):
            raise ConfigError(f"[provisioning.ldap] flavour '{config.flavour}' không có (openldap hoặc ad).",
                              code="config_ldap")
        self.ad = config.flavour == "ad"
        if self.ad and not (config.url.lower().startswith("ldaps://") or config.start_tls):
            # AD refuses unicodePwd in clear (53), and a password must not cross the network unencrypted.
            raise ConfigError("Active Directory cần kết nối mã hoá: dùng ldaps:// hoặc start_tls = true "
                              "trong [provisioning.ldap].", code="config_ldap")
        self.config = config
        self._password = password
        self._sleep = sleep
        self._pool = Pool(self._connect, max(1, config.pool_size))
        self._bases = tuple(dict.fromkeys((config.staff_base, config.student_base)))
        # address -> (when, entry or None): what `lookup_many` found, used once by `create` instead of its search.
        self._seen: dict[str, tuple[float, _Found | None]] = {}

    # -- the port -------------------------------------------------------------------------------------

    async def lookup(self, address: str) -> DirectoryEntry | None:
        """The entry whose mail attribute is this address, under either base (None when free)."""
        found = await self._call(lambda conn: self._find(conn, address), address)
        return found.entry if found else None

    async def lookup_many(self, addresses: list[str]) -> None:
        """Search a chunk's addresses at once (one search per base), for the `create` calls that follow.

        Each answer replaces that address's search in its `create`, once, within `_SEEN_SECONDS`: the add
        then still fails on an existing DN (68, read and judged as before), and a retry searches afresh.
        """
        wanted = sorted({a for a in addresses if a})
        if not wanted:
            return
        found = await self._call(lambda conn: self._find_many(conn, wanted), wanted[0])
        now = asyncio.get_running_loop().time()
        if len(self._seen) + len(found) > _SEEN_MAX:
            self._seen.clear()
        self._seen.update((address, (now, entry)) for address, entry in found.items())

    async def create(self, spec: AccountSpec, password: str) -> str:
        """Add the entry and set its password; link an entry of the same key or person; else AddressTaken."""
        added: list[str] = []  # survives a retry: the add went through before the connection broke
        seen = self._seen.pop(spec.address, None)
        prior = [seen[1]] if seen is not None and asyncio.get_running_loop().time() - seen[0] < _SEEN_SECONDS else []
        return await self._call(lambda conn: self._create(conn, spec, password, added, prior), spec.address)

    async def reset_password(self, address: str, password: str, *, force_change: bool = True) -> None:
        """Set a new password and re-enable the entry (unlock, or clear ACCOUNTDISABLE)."""
        def work(conn: Connection) -> None:
            found = self._find(conn, address)
            if found is None:
                raise ProvisionError(f"Không có tài khoản {address} trên máy chủ LDAP.", permanent=True)
            self._set_password(conn, found, address, password, force_change)
        await self._call(work, address)

    async def suspend(self, address: str) -> str:
        """Lock sign-in (ppolicy pwdAccountLockedTime, or AD ACCOUNTDISABLE); keep the entry."""
        def work(conn: Connection) -> str:
            found = self._find(conn, address)
            if found is None:
                return "absent"
            if self.ad:
                change = {"userAccountControl": [(MODIFY_REPLACE, [str(found.control | UAC_DISABLED)])]}
            else:
                change = {"pwdAccountLockedTime": [(MODIFY_REPLACE, [LOCKED])]}
            conn.modify(found.dn, change)
            self._check(conn, address)
            return "suspended"
        return await self._call(work, address)

    async def restore(self, address: str) -> str:
        """Unlock sign-in again (ppolicy lock removed, or AD ACCOUNTDISABLE cleared); the password stands."""
        def work(conn: Connection) -> str:
            found = self._find(conn, address)
            if found is None:
                return "absent"
            if self.ad:
                change = {"userAccountControl": [(MODIFY_REPLACE, [str(found.control & ~UAC_DISABLED)])]}
            else:
                change = {"pwdAccountLockedTime": [(MODIFY_REPLACE, [])]}
            conn.modify(found.dn, change)
            self._check(conn, address, allowed=(16,))  # noSuchAttribute: it was not locked
            return "restored"
        return await self._call(work, address)

    async def delete(self, address: str) -> str:
        """Remove the entry; "absent" when there is none."""
        def work(conn: Connection) -> str:
            found = self._find(conn, address)
            if found is None:
                return "absent"
            conn.delete(found.dn)
            return "absent" if self._check(conn, address, allowed=(32,)) == 32 else "deleted"
        return await self._call(work, address)

    async def close(self) -> None:
        """Unbind every pooled connection."""
        await self._pool.close()

    # -- pool and retries -----------------------------------------------------------------------------

    async def _call(self, work: Callable[[Connection], T], address: str) -> T:
        delay = _BACKOFF
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                return await self._pool.run(work)
            except Unreachable as exc:
                if attempt == _ATTEMPTS:
                    raise ProvisionError(f"Không liên lạc được máy chủ LDAP {self.config.url} khi xử lý "
                                         f"{address}: {exc}.", retry_after=delay) from None
                log.warning("ldap: %s (attempt %d for %s), retrying", exc, attempt, address)
                await self._sleep(delay * (1 + random.random() / 2))
                delay *= 2
        raise AssertionError("unreachable")

    def _connect(self) -> Connection:
        config = self.config
        tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=config.ca_file or None)
        server = Server(config.url, connect_timeout=config.timeout_seconds, get_info=NONE, tls=tls)
        conn = Connection(server, user=config.bind_dn, password=self._password,
                          receive_timeout=max(1, math.ceil(config.timeout_seconds)),  # whole seconds: SO_RCVTIMEO
                          raise_exceptions=False)
        conn.open()
        try:
            if config.start_tls and not conn.start_tls():
                raise Unreachable(f"StartTLS: {conn.result['description']}")
            if not conn.bind():
                self._check(conn, config.bind_dn)
        except BaseException:
            conn.unbind()  # the slot stays empty: do not leave the socket open behind it
            raise
        return conn

    def _check(self, conn: Connection, address: str, allowed: tuple[int, ...] = ()) -> int:
        result = conn.result
        code = int(result["result"])
        if code == 0 or code in allowed:
            return code
        if code in _TRANSIENT:
            raise Unreachable(f"{result['description']} ({code})")
        raise refusal(address, code, str(result["description"]), str(result.get("message") or ""))

    # -- the work, in a pool thread ---------------------------------------------------------------------

    def _search(self, conn: Connection, query: str, attributes: list[str], address: str) -> list[dict[str, Any]]:
        hits: list[dict[str, Any]] = []
        for base in self._bases:
            conn.search(base, query, SUBTREE, attributes=attributes, size_limit=4)
            self._check(conn, address, allowed=(4, 32))  # sizeLimitExceeded (we asked few); no such base
            hits += [item for item in conn.response or [] if item.get("type") == "searchResEntry"]
        return hits

    def _attributes(self) -> list[str]:
        c = self.config
        state = ["userAccountControl"] if self.ad else ["pwdAccountLockedTime"]
        return list(dict.fromkeys([c.mail_attribute, c.key_attribute, c.person_id_attribute, "cn",
                                   "displayName", *state]))

    def _found(self, item: dict[str, Any], address: str) -> _Found:
        raw = item["raw_attributes"]

        def first(name: str) -> str:
            values = raw.get(name) or []
            return values[0].decode("utf-8", "replace") if values else ""

        control = int(first("userAccountControl") or 0)
        suspended = bool(control & UAC_DISABLED) if self.ad else bool(first("pwdAccountLockedTime"))
        entry = DirectoryEntry(address=first(self.config.mail_attribute) or address,
                               state="suspended" if suspended else "active",
                               key=first(self.config.key_attribute),
                               person_id=first(self.config.person_id_attribute), backend_id=item["dn"],
                               full_name=first("displayName") or first("cn"))
        return _Found(item["dn"], entry, control)

    def _find(self, conn: Connection, address: str) -> _Found | None:
        hits = self._search(conn, f"({self.config.mail_attribute}={escape_filter_chars(address)})",
                            self._attributes(), address)
        return self._found(hits[0], address) if hits else None

    def _find_many(self, conn: Connection, addresses: list[str]) -> dict[str, _Found | None]:
        """Each address's entry (None: free) from one search per base; addresses left unsure are left out."""
        mail = self.config.mail_attribute
        query = "(|" + "".join(f"({mail}={escape_filter_chars(a)})" for a in addresses) + ")"
        hits: list[dict[str, Any]] = []
        for base in self._bases:
            conn.search(base, query, SUBTREE, attributes=self._attributes(), size_limit=2 * len(addresses) + 4)
            if self._check(conn, addresses[0], allowed=(4, 32)) == 4:
                return {}  # more entries than asked for: let each create search for itself
            hits += [item for item in conn.response or [] if item.get("type") == "searchResEntry"]
        out: dict[str, _Found | None] = dict.fromkeys(addresses)
        by_lower = {a.lower(): a for a in addresses}
        for item in hits:  # in base order, like `_find`: the first entry holding an address answers for it
            for value in item["raw_attributes"].get(mail) or []:
                address = by_lower.get(value.decode("utf-8", "replace").lower())
                if address is not None and out[address] is None:
                    out[address] = self._found(item, address)
        return out

    def _read(self, conn: Connection, dn: str, address: str) -> _Found | None:
        conn.search(dn, "(objectClass=*)", BASE, attributes=self._attributes())
        if self._check(conn, address, allowed=(32,)) == 32 or not conn.response:
            return None
        return self._found(conn.response[0], address)

    def _create(self, conn: Connection, spec: AccountSpec, password: str, added: list[str],
                prior: list[_Found | None]) -> str:
        # A batched look-up answers the first attempt only: after a broken connection, search again.
        found = prior.pop() if prior else self._find(conn, spec.address)
        if found is None:
            dn, attributes = self._new_entry(conn, spec)
            conn.add(dn, attributes=attributes)
            if self._check(conn, spec.address, allowed=(68,)) == 0:
                added.append(dn)
                self._set_password(conn, _Found(dn, DirectoryEntry(spec.address, "suspended"), UAC_NORMAL
                                                | UAC_DISABLED), spec.address, password, spec.force_change)
                return "created"
            # entryAlreadyExists: a race, or that sign-in name is someone else's under another address.
            found = self._read(conn, dn, spec.address)
            if found is None:
                raise Unreachable("the conflicting entry went away; trying again")
        if found.entry.state == "deleted" or not found.entry.owned_by(spec.key, spec.person_id):
            owner = f" ({found.entry.person_id})" if found.entry.person_id else ""
            raise AddressTaken(spec.address, f"mục {found.dn} của người khác{owner}")
        self._set_password(conn, found, spec.address, password, spec.force_change)
        missing = {name: [(MODIFY_REPLACE, [value])] for name, value in
                   ((self.config.key_attribute, spec.key), (self.config.person_id_attribute, spec.person_id))
                   if value and not (found.entry.key if name == self.config.key_attribute
                                     else found.entry.person_id)}
        if missing:
            conn.modify(found.dn, missing)
            self._check(conn, spec.address)
        return "created" if added else "linked"

    def _new_entry(self, conn: Connection, spec: AccountSpec) -> tuple[str, dict[str, Any]]:
        c = self.config
        local = spec.address.split("@", 1)[0]
        login = self._account_name(conn, local, spec.address) if self.ad else local
        rdn = login if c.rdn_attribute == c.login_attribute else local
        base = c.staff_base if spec.population == "staff" else c.student_base
        attributes: dict[str, Any] = {
            "objectClass": list(c.object_classes), "cn": spec.full_name, "sn": spec.family_name or spec.full_name,
            "displayName": spec.full_name, c.mail_attribute: spec.address, c.login_attribute: login,
            c.rdn_attribute: rdn}
        if spec.given_name:
            attributes["givenName"] = spec.given_name
        if spec.person_id:
            attributes[c.person_id_attribute] = spec.person_id
        if spec.key:
            attributes[c.key_attribute] = spec.key
        if self.ad:
            # Created disabled: an account must never be enabled without its password (AD's own order).
            attributes.update(userPrincipalName=spec.address, userAccountControl=str(UAC_NORMAL | UAC_DISABLED))
        return f"{c.rdn_attribute}={escape_rdn(rdn)},{base}", attributes

    def _account_name(self, conn: Connection, local: str, address: str) -> str:
        """A free sAMAccountName: the local part cut to 20 characters, numbered when that is taken."""
        for number in range(1, 100):
            tail = "" if number == 1 else str(number)
            candidate = local[:SAM_MAX - len(tail)].rstrip(".") + tail  # AD refuses a name ending in "."
            query = f"({self.config.login_attribute}={escape_filter_chars(candidate)})"
            if not self._search(conn, query, ["1.1"], address):
                return candidate
        raise ProvisionError(f"Không tìm được tên đăng nhập (sAMAccountName) trống cho {address}.",
                             permanent=True)

    def _set_password(self, conn: Connection, found: _Found, address: str, password: str,
                      force_change: bool) -> None:
        if self.ad:
            conn.extend.microsoft.modify_password(found.dn, password)
            self._check(conn, address)
            # pwdLastSet 0 = change at next sign-in; -1 = "set now" (the password stands).
            change = {"userAccountControl": [(MODIFY_REPLACE, [str(found.control & ~UAC_DISABLED | UAC_NORMAL)])],
                      "pwdLastSet": [(MODIFY_REPLACE, ["0" if force_change else "-1"])]}
        else:
            # RFC 3062 Password Modify: slapd hashes with its olcPasswordHash; edudesk never writes a hash.
            conn.extend.standard.modify_password(found.dn, new_password=password)
            self._check(conn, address)
            change = {"pwdAccountLockedTime": [(MODIFY_REPLACE, [])],
                      "pwdReset": [(MODIFY_REPLACE, ["TRUE"] if force_change else [])]}
        conn.modify(found.dn, change)
        self._check(conn, address)


def build(settings: Settings, clock: Clock) -> LdapProvisioner:
    """The LDAP or Active Directory back end of `[provisioning.ldap]`."""
    config = settings.provisioning.ldap
    if not config.bind_dn:
        raise ConfigError("[provisioning.ldap] thiếu bind_dn (tài khoản dịch vụ edudesk dùng để ghi).",
                          code="config_ldap")
    password = settings.secret(config.bind_password_env)
    if not password:
        raise ConfigError(f"Biến môi trường {config.bind_password_env} (mật khẩu LDAP) chưa có giá trị.",
                          code="config_ldap")
    return LdapProvisioner(config, password)
