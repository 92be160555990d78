"""One person of a request carried out in the directory: create, reset or suspend, journalled so a re-run
after a crash finds its own account (and its own address) instead of making a second one.

The journal is the `account` table: before a back end is asked to create an account, a row in state
"pending" holds the address under the request's idempotency key. A re-run reuses that address; the back
end then answers "linked" (the entry it made before the crash) or "created" (it never got that far).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from core.accountlog import record_change
from core.config import Settings
from core.jobs import JobQueue
from core.models import Account, RequestPerson
from core.naming import slug
from core.ports import AccountSpec, AddressTaken, Clock, Provisioner, ProvisionError

MAX_CANDIDATES = 60  # addresses tried for one person before giving up (then it is a naming problem)


@dataclass(frozen=True)
class Who:
    """Who decided and who carried out the request, for the account log."""

    approved_by: str
    executed_by: str


def person_key(request_id: int, person: RequestPerson) -> str:
    """The idempotency key of one person of one request (stable when a corrected list renumbers rows)."""
    who = person.person_id or person.full_name
    return f"{request_id}:{hashlib.sha256(who.encode()).hexdigest()[:24]}"


def address_candidates(proposed: str, settings: Settings, person_id: str = "") -> Iterator[str]:
    """The proposed address, then the next suffixes by the naming rules ("an.nv" → "an.nv2", "an.nv3"…)."""
    yield proposed
    local, _, domain = proposed.partition("@")
    ident = slug(person_id)
    if settings.naming.collision == "student_id_suffix" and ident and local.endswith(ident):
        base, start = local, settings.naming.suffix_start
    else:
        match = re.fullmatch(r"(.*?)(\d*)", local)
        base, digits = (match.group(1), match.group(2)) if match else (local, "")
        start = int(digits) + 1 if digits else settings.naming.suffix_start
    for number in range(start, start + MAX_CANDIDATES):
        yield f"{base}{number}@{domain}"


class RowRunner:
    """Carries out one person's change on one back end and records it (account row, log, the row's outcome)."""

    def __init__(self, settings: Settings, clock: Clock, queue: JobQueue) -> None:
        self.settings = settings
        self.clock = clock
        self.queue = queue

    async def _reserve(self, directory: Provisioner, key: str, person: RequestPerson, population: str,
                       request_id: int, avoid: frozenset[str]) -> str:
        journal = await Account.get_or_none(key=key)
        if journal is not None:
            return journal.address  # chosen by an earlier run: keep it, whatever happened after
        for address in address_candidates(person.proposed_address, self.settings, person.person_id):
            if address != person.proposed_address and address in avoid:
                continue  # proposed for another row of the same list: that row keeps its address
            if await Account.exists(address=address):
                continue  # ours before (any state: a deleted address is never given again), or known foreign
            now = self.clock.now()
            try:
                await Account.create(address=address, population=population, person_id=person.person_id,
                                     full_name=person.full_name, state="pending", created_at=now, updated_at=now,
                                     request_id=request_id, key=key, backend=directory.name)
            except IntegrityError:
                continue  # another job took it a moment ago
            return address
        raise ProvisionError(f"{person.full_name}: không còn địa chỉ trống sau {MAX_CANDIDATES} lần thử.",
                             permanent=True)

    async def _taken(self, directory: Provisioner, address: str, request_id: int, who: Who, detail: str) -> None:
        # The back end holds it for someone else: remember that, so no later request tries it again.
        async with in_transaction() as conn:
            await Account.filter(address=address).using_db(conn).update(
                state="foreign", key=None, updated_at=self.clock.now(), person_id="", full_name="")
            await record_change(conn, self.clock.now(), action="taken", address=address, backend=directory.name,
                                request_id=request_id, approved_by=who.approved_by, executed_by=who.executed_by,
                                ok=False, answer=detail)

    async def create(self, directory: Provisioner, request_id: int, population: str, person: RequestPerson,
                     password: str, who: Who, avoid: frozenset[str] = frozenset()) -> None:
        """Create (or link) the person's account under a free address; the row records the final address."""
        key = person_key(request_id, person)
        data = person.data or {}
        for _ in range(MAX_CANDIDATES):
            address = await self._reserve(directory, key, person, population, request_id, avoid)
            spec = AccountSpec(address=address, full_name=person.full_name, population=population,
                               person_id=person.person_id, given_name=data.get("given_name", ""),
                               family_name=data.get("family_name", ""), request_id=request_id, key=key,
                               force_change=self.settings.provisioning.force_change)
            try:
                result = await directory.create(spec, password)
            except AddressTaken as exc:
                await self._taken(directory, address, request_id, who, exc.message)
                continue
            now = self.clock.now()
            async with in_transaction() as conn:
                await Account.filter(key=key).using_db(conn).update(state="active", updated_at=now,
                                                                     suspended_at=None, delete_after=None)
                await record_change(conn, now, action="create" if result == "created" else "link",
                                    address=address, backend=directory.name, request_id=request_id,
                                    approved_by=who.approved_by, executed_by=who.executed_by, answer=result,
                                    full_name=person.full_name, person_id=person.person_id)
                await RequestPerson.filter(id=person.id).using_db(conn).update(
                    outcome="done", result=result, final_address=address, outcome_detail="")
            return
        raise ProvisionError(f"{person.full_name}: không còn địa chỉ trống.", permanent=True)

    async def reset(self, directory: Provisioner, request_id: int, person: RequestPerson, password: str,
                    who: Who) -> None:
        """Set the generated password on the person's existing account."""
        address = person.proposed_address
        await directory.reset_password(address, password, force_change=self.settings.provisioning.force_change)
        now = self.clock.now()
        async with in_transaction() as conn:
            await Account.filter(address=address).using_db(conn).update(
                state="active", updated_at=now, request_id=request_id, suspended_at=None, delete_after=None)
            await record_change(conn, now, action="reset", address=address, backend=directory.name,
                                request_id=request_id, approved_by=who.approved_by, executed_by=who.executed_by,
                                answer="reset", full_name=person.full_name, person_id=person.person_id)
            await RequestPerson.filter(id=person.id).using_db(conn).update(
                outcome="done", result="reset", final_address=address, outcome_detail="")

    async def suspend(self, directory: Provisioner, request_id: int, population: str, person: RequestPerson,
                      who: Who) -> str | None:
        """Suspend now, delete after the grace period; the address, or None when there was no account."""
        address = person.proposed_address
        result = await directory.suspend(address)
        now = self.clock.now()
        delete_after = now + timedelta(days=self.settings.provisioning.delete_grace_days)
        async with in_transaction() as conn:
            if result == "suspended":
                changed = await Account.filter(address=address).exclude(state__in=["deleted", "foreign"]).using_db(
                    conn).update(state="suspended", suspended_at=now, delete_after=delete_after,
                                 updated_at=now, request_id=request_id)
                if not changed and not await Account.filter(address=address).using_db(conn).exists():
                    # Made outside edudesk: known from now on, so its deletion can be tracked.
                    await Account.create(address=address, population=population, person_id=person.person_id,
                                         full_name=person.full_name, state="suspended", created_at=now,
                                         updated_at=now, request_id=request_id, backend=directory.name,
                                         suspended_at=now, delete_after=delete_after, using_db=conn)
                # Durable from this very transaction: the deletion cannot be forgotten by a crash.
                await self.queue.enqueue("delete_account", f"delete:{address}:{request_id}",
                                         {"address": address, "request_id": request_id}, connection=conn,
                                         run_after=delete_after)
            await record_change(conn, now, action="suspend", address=address, backend=directory.name,
                                request_id=request_id, approved_by=who.approved_by, executed_by=who.executed_by,
                                answer=result, full_name=person.full_name, person_id=person.person_id)
            await RequestPerson.filter(id=person.id).using_db(conn).update(
                outcome="done", result=result, final_address=address, outcome_detail="")
        return address if result == "suspended" else None

    async def fail(self, action: str, request_id: int, person: RequestPerson, backend: str, who: Who,
                   message: str) -> None:
        """Record a refused row (it is retried by the next run) in the row and the account log."""
        now = self.clock.now()
        async with in_transaction() as conn:
            await record_change(conn, now, action=action, address=person.proposed_address, backend=backend,
                                request_id=request_id, approved_by=who.approved_by, executed_by=who.executed_by,
                                ok=False, answer=message, full_name=person.full_name, person_id=person.person_id)
            await RequestPerson.filter(id=person.id).using_db(conn).update(outcome="failed",
                                                                           outcome_detail=message[:500])
