"""The local directory (embedded default): accounts in edudesk's own database, passwords as scrypt hashes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets

from edudesk.core.accounts.models import Account
from edudesk.core.config import Settings
from edudesk.core.ports import AccountSpec, AddressTaken, Clock, DirectoryEntry, ProvisionError

_N, _R, _P = 2**14, 8, 1


def hash_password(password: str) -> str:
    """scrypt hash in a self-describing form: scrypt$N$r$p$salt$hash."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return "$".join(["scrypt", str(_N), str(_R), str(_P), base64.b64encode(salt).decode(),
                     base64.b64encode(digest).decode()])


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches a hash made by `hash_password`."""
    try:
        _, n, r, p, salt, digest = stored.split("$")
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


async def _hash(password: str) -> str:
    # scrypt takes tens of milliseconds: off the event loop, or a list of 300 students stalls everything.
    return await asyncio.to_thread(hash_password, password)


class LocalProvisioner:
    """Accounts in the `account` table: what a school without a directory server starts with."""

    name = "local"

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    async def lookup(self, address: str) -> DirectoryEntry | None:
        """The account row under this address (a pending one too: its address is reserved)."""
        row = await Account.get_or_none(address=address)
        if row is None or row.state == "foreign":
            return None
        state = "active" if row.state == "pending" else row.state
        return DirectoryEntry(address=row.address, state=state, key=row.key or "", person_id=row.person_id,
                              backend_id=str(row.id), full_name=row.full_name)

    async def create(self, spec: AccountSpec, password: str) -> str:
        """Create the account, or link the one that exists for the same key or person (a retried job)."""
        now = self.clock.now()
        existing = await Account.get_or_none(address=spec.address)
        if existing is not None:
            # Linking resets the password: only for the same key (the row the job reserved, or an earlier
            # run of this request) or the same person (both IDs known and equal). Anything else would hand
            # someone else's mailbox to the requester.
            entry = DirectoryEntry(address=existing.address, state=existing.state, key=existing.key or "",
                                   person_id=existing.person_id)
            if existing.state == "deleted" or not entry.owned_by(spec.key, spec.person_id):
                owner = f" ({existing.person_id})" if existing.person_id else ""
                raise AddressTaken(spec.address, f"thuộc về người khác{owner}")
            fresh = existing.state == "pending"
            await Account.filter(id=existing.id).update(
                state="active", password_hash=await _hash(password), full_name=spec.full_name, updated_at=now,
                person_id=existing.person_id or spec.person_id, suspended_at=None, delete_after=None)
            return "created" if fresh else "linked"
        await Account.create(address=spec.address, population=spec.population, person_id=spec.person_id,
                             full_name=spec.full_name, state="active", created_at=now, updated_at=now,
                             request_id=spec.request_id, key=spec.key or None, backend=self.name,
                             password_hash=await _hash(password))
        return "created"

    async def reset_password(self, address: str, password: str, *, force_change: bool = True) -> None:
        """Set a new password on an active or suspended account (a reset re-enables it)."""
        updated = await Account.filter(address=address, state__in=["active", "suspended"]).update(
            state="active", password_hash=await _hash(password), updated_at=self.clock.now(),
            suspended_at=None, delete_after=None)
        if not updated:
            raise ProvisionError(f"Không có tài khoản {address} đang hoạt động.", permanent=True)

    async def suspend(self, address: str) -> str:
        """Refuse sign-in from now on; the password hash is dropped, the row kept."""
        now = self.clock.now()
        updated = await Account.filter(address=address, state="active").update(
            state="suspended", password_hash="", updated_at=now, suspended_at=now)
        if updated:
            return "suspended"
        return "suspended" if await Account.exists(address=address, state="suspended") else "absent"

    async def restore(self, address: str) -> str:
        """A suspended account is active again and no longer waits for deletion.

        Suspending dropped the password hash: the account signs in again after a password reset (the Dovecot
        back end keeps the hash in its file and restores the old password too)."""
        updated = await Account.filter(address=address, state="suspended").update(
            state="active", updated_at=self.clock.now(), suspended_at=None, delete_after=None)
        if updated:
            return "restored"
        return "restored" if await Account.exists(address=address, state="active") else "absent"

    async def delete(self, address: str) -> str:
        """Mark the account deleted (kept for the audit trail; the address stays taken)."""
        updated = await Account.filter(address=address).exclude(state__in=["deleted", "foreign"]).update(
            state="deleted", password_hash="", updated_at=self.clock.now(), delete_after=None)
        return "deleted" if updated else "absent"

    async def close(self) -> None:
        """Nothing to release: the database belongs to the app."""


def build(settings: Settings, clock: Clock) -> LocalProvisioner:
    """The local directory of `[provisioning.local]`, keeping its Dovecot passwd-file in step when one is set."""
    if settings.provisioning.local.passwd_file:
        # The `dovecot` back end is this directory plus the file: imported here, it imports this module.
        from edudesk.directories.dovecot import for_file

        return for_file(settings, clock, settings.provisioning.local.passwd_file, name="local")
    return LocalProvisioner(clock)
