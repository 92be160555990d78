"""The `dovecot` back end: the local account table (the source of truth) plus the passwd-file Dovecot reads.

A small school's own mail server then really works: each account is a line
`address:{SCHEME}hash::::home::` that Dovecot's passwd-file passdb/userdb authenticates against, a
suspended one carries `nologin=y`, a deleted one loses its line. Lines edudesk did not write stay as they
are, and their addresses count as taken. Dovecot has no "change the password at first sign-in":
`force_change` is accepted and has no effect here.
"""

from __future__ import annotations

import asyncio
import errno
import re
from collections.abc import Awaitable

from tortoise.exceptions import IntegrityError

from edudesk.core.accounts.models import Account
from edudesk.core.config import Settings
from edudesk.core.errors import ConfigError
from edudesk.core.ports import AccountSpec, AddressTaken, Clock, DirectoryEntry, ProvisionError
from edudesk.directories.local import LocalProvisioner
from edudesk.directories.passwd_file import PasswdEntry, PasswdFile, check_field

SCHEMES = ("SHA512-CRYPT", "BLF-CRYPT")
SHA512_ROUNDS = 5000  # crypt(3)'s default, what Dovecot's own `doveadm pw -s SHA512-CRYPT` writes
BCRYPT_COST = 10
_PERMANENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR}
_VARIABLE = re.compile(r"%([%und])")


def dovecot_hash(password: str, scheme: str) -> str:
    """The password field for the passwd-file: `{SCHEME}hash`, in a scheme Dovecot verifies."""
    if scheme == "BLF-CRYPT":
        import bcrypt

        # bcrypt's $2b$ is verified by Debian's libxcrypt, which Dovecot's BLF-CRYPT calls.
        return "{BLF-CRYPT}" + bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_COST)).decode()
    from passlib.hash import sha512_crypt  # the libpass package (passlib's maintained fork)

    return "{SHA512-CRYPT}" + str(sha512_crypt.using(rounds=SHA512_ROUNDS).hash(password))


def expand_home(template: str, address: str) -> str:
    """The home directory of `address`: Dovecot's %u, %n, %d (and %%) expanded here, once."""
    local, _, domain = address.partition("@")
    values = {"u": address, "n": local, "d": domain, "%": "%"}
    return _VARIABLE.sub(lambda m: values[m.group(1)], template)


class DovecotProvisioner(LocalProvisioner):
    """Accounts in the `account` table, each mirrored as a line of a Dovecot passwd-file."""

    def __init__(self, clock: Clock, passwd: PasswdFile, *, scheme: str = "SHA512-CRYPT", mail_home: str = "",
                 name: str = "dovecot") -> None:
        super().__init__(clock)
        self.name = name  # "local" when it is the local directory keeping its optional passwd-file
        self.passwd = passwd
        self.scheme = scheme
        self.mail_home = mail_home

    async def lookup(self, address: str) -> DirectoryEntry | None:
        """The account row, else a line of the passwd-file that edudesk did not make (the address is taken)."""
        entry = await super().lookup(address)
        if entry is not None:
            return entry
        line = await self._line(address)
        if line is None:
            return None
        return DirectoryEntry(address=address, state="suspended" if line.locked else "active",
                              backend_id="passwd-file")

    async def create(self, spec: AccountSpec, password: str) -> str:
        """Create or link the account as the local directory does, then write its line with the password."""
        self._check_address(spec.address)
        hashed = await self._hash(spec.address, password)
        for attempt in range(2):
            row = await Account.get_or_none(address=spec.address)
            ours = row is not None and row.state not in ("pending", "foreign")
            # A pending row is this very create: its address already in the file was put there by hand.
            if not ours and await self._line(spec.address) is not None:
                raise AddressTaken(spec.address, "đã có trong passwd-file của Dovecot (không do edudesk tạo)")
            try:
                result = await super().create(spec, password)
                break
            except IntegrityError:
                if attempt:
                    raise
                # Created by another task a moment ago: look again, then link it or refuse it.
        await self._write(spec.address, self.passwd.set_password(spec.address, hashed, self._home(spec.address)))
        return result

    async def reset_password(self, address: str, password: str, *, force_change: bool = True) -> None:
        """Set a new password and re-enable the login (also of a line made outside edudesk)."""
        self._check_address(address)
        hashed = await self._hash(address, password)
        try:
            await super().reset_password(address, password, force_change=force_change)
        except ProvisionError:
            if await self._line(address) is None:
                raise
            # Only in the passwd-file (made by hand before edudesk): the school asked for its reset.
        await self._write(address, self.passwd.set_password(address, hashed, self._home(address)))

    async def suspend(self, address: str) -> str:
        """Refuse the login from now on (`nologin=y`); the line, the hash and the mail stay."""
        self._check_address(address)
        local = await super().suspend(address)
        in_file = await self._write(address, self.passwd.suspend(address))
        return "suspended" if local == "suspended" or in_file else "absent"

    async def restore(self, address: str) -> str:
        """Allow the login again (`nologin=y` removed): the line kept its hash, so the old password works."""
        self._check_address(address)
        local = await super().restore(address)
        in_file = await self._write(address, self.passwd.unlock(address))
        return "restored" if local == "restored" or in_file else "absent"

    async def delete(self, address: str) -> str:
        """Mark the account deleted and remove its line (the mail folder is left to the administrator)."""
        self._check_address(address)
        local = await super().delete(address)
        in_file = await self._write(address, self.passwd.remove(address))
        return "deleted" if local == "deleted" or in_file else "absent"

    def _home(self, address: str) -> str:
        return expand_home(self.mail_home, address) if self.mail_home else ""

    def _check_address(self, address: str) -> None:
        try:
            check_field("user", address)
        except ValueError:
            raise ProvisionError(f"Địa chỉ {address} không ghi được vào passwd-file của Dovecot (có dấu ':', "
                                 "khoảng trắng hoặc xuống dòng).", permanent=True) from None

    async def _hash(self, address: str, password: str) -> str:
        try:
            # Tens of milliseconds of CPU: off the event loop.
            return await asyncio.to_thread(dovecot_hash, password, self.scheme)
        except ValueError:  # bcrypt refuses passwords over 72 bytes
            raise ProvisionError(f"Mật khẩu của {address} quá dài cho {self.scheme} (tối đa 72 byte).",
                                 permanent=True) from None

    async def _line(self, address: str) -> PasswdEntry | None:
        try:
            return await self.passwd.entry(address)
        except OSError as exc:
            raise self._file_error(address, exc) from None

    async def _write(self, address: str, change: Awaitable[bool]) -> bool:
        try:
            return await change
        except OSError as exc:
            raise self._file_error(address, exc) from None

    def _file_error(self, address: str, exc: OSError) -> ProvisionError:
        reason = exc.strerror or type(exc).__name__
        return ProvisionError(f"Không ghi được passwd-file của Dovecot ({self.passwd.path}) cho {address}: "
                              f"{reason}.", permanent=exc.errno in _PERMANENT_ERRNOS,
                              retry_after=None if exc.errno in _PERMANENT_ERRNOS else 30.0)


def for_file(settings: Settings, clock: Clock, path: str, *, name: str) -> DovecotProvisioner:
    """Accounts kept in the passwd-file at `path` ({data_dir} expanded), with `[provisioning.dovecot]`'s
    scheme and home template."""
    config = settings.provisioning.dovecot
    if config.scheme not in SCHEMES:
        raise ConfigError(f"Kiểu mật khẩu Dovecot '{config.scheme}' không dùng được (hiện có: "
                          f"{', '.join(SCHEMES)}).", code="config_dovecot")
    try:
        dovecot_hash("kiểm tra", config.scheme)
    except ImportError as exc:
        raise ConfigError(f"Thiếu thư viện cho {config.scheme}: {exc.name} (cài gói libpass).",
                          code="config_dovecot") from None
    home = str(settings.path(config.mail_home)) if config.mail_home else ""
    if re.search(r"[:\r\n]", home):
        raise ConfigError(f"mail_home của Dovecot không được chứa dấu ':' hay xuống dòng: {home}.",
                          code="config_dovecot")
    return DovecotProvisioner(clock, PasswdFile(settings.path(path)), scheme=config.scheme, mail_home=home,
                              name=name)


def build(settings: Settings, clock: Clock) -> DovecotProvisioner:
    """The `dovecot` back end of `[provisioning.dovecot]`."""
    return for_file(settings, clock, settings.provisioning.dovecot.passwd_file, name="dovecot")
