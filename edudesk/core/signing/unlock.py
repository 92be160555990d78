"""Opening a teacher's server-held key with their PIN, for one signing session: wrong PINs are refused,
audited and counted (MAX_TRIES in a row lock the credential for LOCK_TIME, and the admins are told); a
credential registered before PINs existed gets one from its own teacher. The PIN itself is never stored,
logged or audited."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from html import escape as esc
from typing import Any

from tortoise.transactions import in_transaction

from edudesk.core.chats.notify import enqueue_notice
from edudesk.core.config import Settings
from edudesk.core.db import lock_for_transaction
from edudesk.core.jobs import JobQueue
from edudesk.core.models import AuditEvent
from edudesk.core.people.staff import Actor, Role, staff_holding
from edudesk.core.ports import Clock, Signer
from edudesk.core.secrets import SecretBox
from edudesk.core.signing.factory import PIN_NOT_SET, SignerFactory, open_legacy_pkcs12, seal_pkcs12
from edudesk.core.signing.models import SignerCredential, Teacher
from edudesk.core.signing.pin import (
    LOCK_TIME,
    MAX_TRIES,
    PinError,
    PinNotSet,
    PinRequired,
    check_new_pin,
    open_with_pin,
)
from edudesk.core.text import local_time


class PinGuard:
    """Unlock PIN-sealed keys for a session; set the PIN of an older credential."""

    def __init__(self, settings: Settings, clock: Clock, queue: JobQueue, box: SecretBox,
                 signers: SignerFactory) -> None:
        self.settings, self.clock, self.queue, self.box, self.signers = settings, clock, queue, box, signers

    async def _refused(self, actor: Actor, reason: str, credential: SignerCredential, **detail: Any) -> None:
        await AuditEvent.create(at=self.clock.now(), actor=actor.label, action="records_refused",
                                detail={"action": "rec_sign", "reason": reason, "credential": credential.id, **detail})

    def _locked_until(self, config: dict[str, Any]) -> datetime | None:
        until = config.get("pin_locked_until")
        if not until:
            return None
        moment = datetime.fromisoformat(str(until))
        return moment if moment > self.clock.now() else None

    def _locked_text(self, until: datetime) -> str:
        return (f"Đã nhập sai mã PIN {MAX_TRIES} lần liên tiếp: chứng thư số tạm khoá đến "
                f"{local_time(until, self.settings.general.timezone)}. Thầy/Cô hãy thử lại sau.")

    async def unlock(self, actor: Actor, credential: SignerCredential, pin: str | None) -> Signer:
        """The credential's signer opened with the PIN, or an audited PinError / PinRequired / PinNotSet.

        Each try is counted before the PIN is checked, under the credential's lock, so tries sent in parallel
        cannot outrun the count, and a lock once set holds until it expires, whatever arrives meanwhile.
        """
        from edudesk.core.signing.pkcs12 import Pkcs12Signer

        config = credential.config or {}
        if "pin_sealed" not in config:
            await self._refused(actor, "pin_not_set", credential)
            raise PinNotSet(PIN_NOT_SET)
        if not pin or not pin.strip():
            until = self._locked_until(config)
            await self._refused(actor, "pin_locked" if until else "pin_required", credential)
            if until is not None:
                raise PinError(self._locked_text(until), code="pin_locked")
            raise PinRequired("Hãy nhập mã PIN ký của Thầy/Cô.")
        try_count, locks = await self._reserve_try(actor, credential)
        sealed = json.loads(self.box.open(config["pin_sealed"]))
        opened = await asyncio.to_thread(open_with_pin, pin, sealed)  # scrypt: CPU work off the loop
        if opened is None:
            raise await self._wrong(actor, credential, try_count, locks)
        await self._right(credential.id, locks)
        data, passphrase = opened
        return Pkcs12Signer(data, passphrase.encode(), pool=self.signers.pool())

    async def _reserve_try(self, actor: Actor, credential: SignerCredential) -> tuple[int, datetime | None]:
        """Count one try before the PIN is checked; refuse while locked. (tries so far, the lock this try set)."""
        now = self.clock.now()
        async with in_transaction() as conn:
            await lock_for_transaction(conn, f"edudesk:pin:{credential.id}")
            row = await SignerCredential.filter(id=credential.id).using_db(conn).get()
            config = dict(row.config or {})
            until = self._locked_until(config)
            if until is None:
                failures = int(config.get("pin_failures") or 0) + 1
                locks = now + LOCK_TIME if failures >= MAX_TRIES else None
                config["pin_failures"] = 0 if locks else failures
                config["pin_locked_until"] = locks.isoformat() if locks else ""
                await SignerCredential.filter(id=credential.id).using_db(conn).update(config=config)
        if until is not None:
            await self._refused(actor, "pin_locked", credential)
            raise PinError(self._locked_text(until), code="pin_locked")
        return failures, locks

    async def _right(self, credential_id: int, locks: datetime | None) -> None:
        """The PIN was right: the count starts again (a lock this very try set is lifted, no other)."""
        async with in_transaction() as conn:
            await lock_for_transaction(conn, f"edudesk:pin:{credential_id}")
            row = await SignerCredential.filter(id=credential_id).using_db(conn).get()
            config = dict(row.config or {})
            config["pin_failures"] = 0
            if locks is not None and config.get("pin_locked_until") == locks.isoformat():
                config["pin_locked_until"] = ""
            await SignerCredential.filter(id=credential_id).using_db(conn).update(config=config)

    async def _wrong(self, actor: Actor, credential: SignerCredential, failures: int,
                     locks: datetime | None) -> PinError:
        """Audit a wrong PIN (already counted); tell the admins when this try locked the credential."""
        await AuditEvent.create(at=self.clock.now(), actor=actor.label, action="records_refused",
                                detail={"action": "rec_sign", "reason": "pin_locked" if locks else "pin_wrong",
                                        "credential": credential.id, "failures": failures})
        if locks is None:
            return PinError(f"Mã PIN không đúng; còn {MAX_TRIES - failures} lần thử trước khi chứng thư số bị tạm "
                            f"khoá {int(LOCK_TIME.total_seconds() // 60)} phút.")
        teacher = await Teacher.get_or_none(id=credential.teacher_id)
        text = (f"Chứng thư số của <b>{esc(teacher.name if teacher else '?')}</b> bị tạm khoá đến "
                f"{local_time(locks, self.settings.general.timezone)}: nhập sai mã PIN {MAX_TRIES} lần liên tiếp.")
        for admin in await staff_holding(Role.ADMIN, self.settings):
            await enqueue_notice(None, self.queue, f"pinlock:{credential.id}:{locks.isoformat()}:{admin.id}",
                                 f"staff:{admin.id}", text)
        self.queue.wake()
        return PinError(self._locked_text(locks), code="pin_locked")

    async def set_pin(self, actor: Actor, teacher: Teacher, credential_id: int, pin: str,
                      repeat: str | None = None) -> SignerCredential:
        """A teacher seals their own credential registered before PINs under a PIN (the clear copy is dropped)."""
        row = await SignerCredential.get_or_none(id=credential_id, teacher_id=teacher.id)
        if row is None or row.kind != "pkcs12" or "pkcs12" not in (row.config or {}):
            raise PinError("Chứng thư số này không cần (hoặc đã có) mã PIN.", code="pin_not_needed")
        pin = check_new_pin(pin, repeat)
        data, passphrase = open_legacy_pkcs12(self.box, row.config)
        config = await asyncio.to_thread(seal_pkcs12, self.box, data, passphrase, pin)
        if "chain" in row.config:
            config["chain"] = row.config["chain"]
        await SignerCredential.filter(id=row.id).update(config=config)
        now = self.clock.now()
        await AuditEvent.create(at=now, actor=actor.label, action="signer_pin_set",
                                detail={"credential": row.id, "teacher": teacher.code})
        # Whoever sat at the teacher's signed-in desk could have done this: the teacher and the admins hear of it.
        text = (f"Mã PIN ký cho chứng thư số của <b>{esc(teacher.name)}</b> vừa được đặt lúc "
                f"{local_time(now, self.settings.general.timezone)}. Nếu không phải Thầy/Cô đặt, hãy báo ngay quản "
                f"trị viên để thu hồi chứng thư số này.")
        targets = [f"staff:{a.id}" for a in await staff_holding(Role.ADMIN, self.settings)]
        if teacher.staff_id is not None:
            targets.append(f"staff:{teacher.staff_id}")
        for target in dict.fromkeys(targets):
            await enqueue_notice(None, self.queue, f"pinset:{row.id}:{now.isoformat()}:{target}", target, text)
        self.queue.wake()
        return await SignerCredential.get(id=row.id)
