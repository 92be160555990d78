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
from datetime import datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from edudesk.core.accounts.log import record_change
from edudesk.core.accounts.models import Account, AccountLog
from edudesk.core.accounts.naming import slug
from edudesk.core.config import Settings
from edudesk.core.intake.domain import Population
from edudesk.core.jobs import JobKind, JobQueue
from edudesk.core.people.registry import lookup
from edudesk.core.ports import AccountSpec, AddressTaken, Clock, Provisioner, ProvisionError
from edudesk.core.requests.models import RequestPerson
from edudesk.core.text import clean
from edudesk.core.words import t

MAX_CANDIDATES = 60  # addresses tried for one person before giving up (then it is a naming problem)


@dataclass(frozen=True)
class Outcome:
    """What one row came to: `action` for the account log, the back end's `result`, the final address."""

    person: RequestPerson
    action: str
    result: str = ""
    address: str = ""
    ok: bool = True
    detail: str = ""
    key: str = ""


@dataclass(frozen=True)
class Who:
    """Who decided and who carried out the request, for the account log."""

    approved_by: str
    executed_by: str


@dataclass(frozen=True)
class Name:
    """How the account names its owner in the directory."""

    full: str
    given: str
    family: str


async def display_names(population: str, persons: list[RequestPerson]) -> dict[int, Name]:
    """The name each account shows: the registry's spelling when it knows the person, unless the office
    picked the form's for that row (`name_source = "form"`); rows missing here use the form's."""
    wanted = [p for p in persons if p.person_id and p.name_source != "form"]
    entries = await lookup(Population(population), [p.person_id for p in wanted]) if wanted else {}
    out = {}
    for p in wanted:
        entry = entries.get(p.person_id)
        full = clean(entry.full_name) if entry is not None else ""
        if not full or full == p.full_name:
            continue
        parts = full.split()  # Vietnamese order: family name first, given name last
        out[p.id] = Name(full, parts[-1], parts[0] if len(parts) > 1 else "")
    return out


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

    async def reserve_bulk(self, conn: Any, directory: Provisioner, request_id: int, population: str,
                           persons: list[RequestPerson]) -> dict[str, str]:
        """Journal each person's proposed address in the caller's transaction, set-wise; key -> address held.

        Conflicts are skipped here (INSERT ... ON CONFLICT DO NOTHING leaves the transaction usable);
        `reserve_rest` finds those people a free address afterwards.
        """
        keys = {p.id: person_key(request_id, p) for p in persons}
        known = dict(await Account.filter(key__in=list(keys.values())).using_db(conn).values_list("key", "address"))
        need = [p for p in persons if keys[p.id] not in known]
        if not need:
            return known
        wanted = [p.proposed_address for p in need]
        taken = set(await Account.filter(address__in=wanted).using_db(conn).values_list("address", flat=True))
        now = self.clock.now()
        fresh = [p for p in need if p.proposed_address not in taken and wanted.count(p.proposed_address) == 1]
        if fresh:
            await Account.bulk_create([
                Account(address=p.proposed_address, population=population, person_id=p.person_id,
                        full_name=p.full_name, state="pending", created_at=now, updated_at=now,
                        request_id=request_id, key=keys[p.id], backend=directory.name) for p in fresh],
                ignore_conflicts=True, using_db=conn)
            known |= dict(await Account.filter(key__in=[keys[p.id] for p in fresh]).using_db(conn).values_list(
                "key", "address"))
        return known

    async def reserve_rest(self, directory: Provisioner, request_id: int, population: str,
                           persons: list[RequestPerson], known: dict[str, str],
                           avoid: frozenset[str]) -> dict[int, str]:
        """The journalled address of each person: `known` from `reserve_bulk`, the others one by one."""
        out = {}
        for p in persons:
            key = person_key(request_id, p)
            out[p.id] = known.get(key) or await self._reserve(directory, key, p, population, request_id, avoid)
        return out

    async def create(self, directory: Provisioner, request_id: int, population: str, person: RequestPerson,
                     address: str, password: str, who: Who, avoid: frozenset[str] = frozenset(),
                     name: Name | None = None) -> Outcome:
        """Create (or link) the account at its journalled address; a taken one moves on to the next free one."""
        key = person_key(request_id, person)
        data = person.data or {}
        name = name or Name(person.full_name, data.get("given_name", ""), data.get("family_name", ""))
        for _ in range(MAX_CANDIDATES):
            spec = AccountSpec(address=address, full_name=name.full, population=population,
                               person_id=person.person_id, given_name=name.given,
                               family_name=name.family, request_id=request_id, key=key,
                               force_change=self.settings.provisioning.force_change)
            try:
                result = await directory.create(spec, password)
            except AddressTaken as exc:
                await self._taken(directory, address, request_id, who, exc.message)
                address = await self._reserve(directory, key, person, population, request_id, avoid)
                continue
            return Outcome(person, "create" if result == "created" else "link", result, address, key=key)
        raise ProvisionError(f"{person.full_name}: không còn địa chỉ trống.", permanent=True)

    async def reset(self, directory: Provisioner, person: RequestPerson, password: str) -> Outcome:
        """Set the generated password on the person's existing account."""
        address = person.proposed_address
        await directory.reset_password(address, password, force_change=self.settings.provisioning.force_change)
        return Outcome(person, "reset", "reset", address)

    async def suspend(self, directory: Provisioner, person: RequestPerson) -> Outcome:
        """Suspend now (the deletion is queued when the outcome is recorded)."""
        address = person.proposed_address
        return Outcome(person, "suspend", await directory.suspend(address), address)

    async def skip(self, persons: list[RequestPerson]) -> None:
        """Rows held back until the office approves them: a result of their own, not a failure to retry."""
        detail = t("rows.skipped", "vi")
        for p in persons:
            p.outcome, p.outcome_detail = "skipped", detail
        await RequestPerson.bulk_update(persons, fields=["outcome", "outcome_detail"])

    async def record(self, directory: Provisioner, request_id: int, population: str, outcomes: list[Outcome],
                     who: Who) -> None:
        """Write a chunk's outcomes in one transaction: account rows, the account log, each row's outcome."""
        now = self.clock.now()
        delete_after = now + timedelta(days=self.settings.provisioning.delete_grace_days)
        entries, rows, linked = [], [], []
        async with in_transaction() as conn:
            for o in outcomes:
                p = o.person
                entries.append(AccountLog(at=now, action=o.action, address=o.address or p.proposed_address,
                                          backend=directory.name, request_id=request_id,
                                          approved_by=who.approved_by[:200], executed_by=who.executed_by[:200],
                                          ok=o.ok, answer=(o.result if o.ok else o.detail)[:500],
                                          full_name=p.full_name[:300], person_id=p.person_id[:64]))
                if o.ok:
                    p.outcome, p.result, p.final_address, p.outcome_detail = "done", o.result, o.address, ""
                else:
                    p.outcome, p.outcome_detail = "failed", o.detail[:500]
                rows.append(p)
                if not o.ok:
                    continue
                if o.action in ("create", "link"):
                    linked.append(o.key)
                elif o.action == "reset":
                    await Account.filter(address=o.address).using_db(conn).update(
                        state="active", updated_at=now, request_id=request_id, suspended_at=None, delete_after=None)
                elif o.result == "suspended":
                    await self._suspended(conn, directory, request_id, population, p, o.address, now, delete_after)
            if linked:
                await Account.filter(key__in=linked).using_db(conn).update(state="active", updated_at=now,
                                                                            suspended_at=None, delete_after=None)
            if rows:
                await RequestPerson.bulk_update(rows, fields=["outcome", "result", "final_address", "outcome_detail"],
                                                using_db=conn)
            await AccountLog.bulk_create(entries, using_db=conn)

    async def _suspended(self, conn: Any, directory: Provisioner, request_id: int, population: str,
                         person: RequestPerson, address: str, now: datetime, delete_after: datetime) -> None:
        changed = await Account.filter(address=address).exclude(state__in=["deleted", "foreign"]).using_db(
            conn).update(state="suspended", suspended_at=now, delete_after=delete_after, updated_at=now,
                         request_id=request_id)
        if not changed and not await Account.filter(address=address).using_db(conn).exists():
            # Made outside edudesk: known from now on, so its deletion can be tracked.
            await Account.create(address=address, population=population, person_id=person.person_id,
                                 full_name=person.full_name, state="suspended", created_at=now, updated_at=now,
                                 request_id=request_id, backend=directory.name, suspended_at=now,
                                 delete_after=delete_after, using_db=conn)
        # Durable from this very transaction: the deletion cannot be forgotten by a crash.
        await self.queue.enqueue(JobKind.DELETE_ACCOUNT, f"delete:{address}:{request_id}",
                                 {"address": address, "request_id": request_id}, connection=conn,
                                 run_after=delete_after)
