"""The local directory (embedded default): accounts in edudesk's own database, passwords as scrypt hashes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets

from core.models import Account
from core.ports import AccountSpec, Clock, ProvisionError

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

    async def create(self, spec: AccountSpec, password: str) -> str:
        """Create the account, or link the one that exists for the same person (a retried job)."""
        now = self.clock.now()
        existing = await Account.get_or_none(address=spec.address)
        if existing is not None:
            # Linking resets the password: only for the same person (both IDs known and equal), or the
            # account this very request created on an earlier run. Anything else would hand someone
            # else's mailbox to the requester.
            same_person = bool(existing.person_id) and existing.person_id == spec.person_id
            same_request = (existing.request_id is not None and existing.request_id == spec.request_id
                            and (not existing.person_id or not spec.person_id or same_person))
            if not (same_person or same_request):
                owner = f" ({existing.person_id})" if existing.person_id else ""
                raise ProvisionError(f"Địa chỉ {spec.address} đã thuộc về người khác{owner}.", permanent=True)
            await Account.filter(id=existing.id).update(state="active", password_hash=await _hash(password),
                                                        full_name=spec.full_name, updated_at=now,
                                                        person_id=existing.person_id or spec.person_id)
            return "linked"
        await Account.create(address=spec.address, population=spec.population, person_id=spec.person_id,
                             full_name=spec.full_name, state="active", created_at=now, updated_at=now,
                             request_id=spec.request_id,
                             password_hash=await _hash(password))
        return "created"

    async def reset_password(self, address: str, password: str) -> None:
        """Set a new password on an active account."""
        updated = await Account.filter(address=address, state="active").update(
            password_hash=await _hash(password), updated_at=self.clock.now())
        if not updated:
            raise ProvisionError(f"Không có tài khoản {address} đang hoạt động.", permanent=True)

    async def delete(self, address: str) -> str:
        """Mark the account deleted (kept for the audit trail; the address stays taken)."""
        updated = await Account.filter(address=address).exclude(state="deleted").update(
            state="deleted", password_hash="", updated_at=self.clock.now())
        return "deleted" if updated else "absent"
