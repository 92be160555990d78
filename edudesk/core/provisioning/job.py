"""The `provision` job: carry out an approved request in the directory, then tell the requester.

Safe to re-run after a crash at any point: each person's password is generated once and kept sealed
(`PendingSecret`), each address is journalled before the back end is called (`rows.RowRunner`), and rows
already done are skipped, so a re-run of a 500-student list carries on where it stopped, makes no second
account and sends one mail. Rows a back end refuses are listed on the card and retried by the next run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import Any

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from edudesk.core.accounts.models import PendingSecret
from edudesk.core.chats.notify import enqueue_cards
from edudesk.core.config import Settings
from edudesk.core.intake.domain import Kind
from edudesk.core.jobs import Handlers, JobKind, JobQueue, PermanentJobError
from edudesk.core.models import AuditEvent, Job
from edudesk.core.ports import Clock, Provisioner, ProvisionError
from edudesk.core.provisioning import BatchLookup, Directories
from edudesk.core.provisioning.rows import Outcome, RowRunner, Who, display_names, person_key
from edudesk.core.requests.mailqueue import mail_context, queue_mail
from edudesk.core.requests.models import Request, RequestPerson
from edudesk.core.requests.rows import held_back
from edudesk.core.requests.workflow import Event, State, transition
from edudesk.core.secrets import SecretBox, generate_password
from edudesk.core.text import local_time

log = logging.getLogger(__name__)
PROGRESS_MIN_SECONDS = 3.0  # card edits while a list runs: enough to watch, few enough for chat limits


def password_key(request_id: int, person: RequestPerson) -> str:
    """Where a person's generated password is kept sealed until it reaches the requester."""
    return f"pw:{person_key(request_id, person)}"


class ProvisionJob:
    """Job handler for `provision` (and the source of the sealed passwords the result mail carries)."""

    def __init__(self, settings: Settings, clock: Clock, queue: JobQueue, directories: Directories,
                 box: SecretBox) -> None:
        self.settings = settings
        self.clock = clock
        self.queue = queue
        self.directories = directories
        self.box = box
        self.rows = RowRunner(settings, clock, queue)

    def handlers(self) -> Handlers:
        """The directory's jobs: carry out a request, delete a suspended account after its grace period."""
        from edudesk.core.provisioning.removal import DeleteAccountJob, RestoreAccountJob

        return {JobKind.PROVISION: self, JobKind.DELETE_ACCOUNT: DeleteAccountJob(self.clock, self.directories),
                JobKind.RESTORE_ACCOUNT: RestoreAccountJob(self.settings, self.clock, self.queue, self.directories)}

    async def _passwords(self, request_id: int, persons: list[RequestPerson]) -> dict[int, tuple[str, str]]:
        """Each person's (secret key, password): generated once, sealed, committed before any directory call.

        Keyed by the person, not the row: a corrected list renumbers rows, and row 0 may be someone else;
        the same person keeps the password an earlier, interrupted run already set. Runs in the caller's
        transaction when there is one (`_prepare`).
        """
        keys = {p.id: password_key(request_id, p) for p in persons}
        sealed = dict(await PendingSecret.filter(key__in=list(keys.values())).values_list("key", "sealed"))
        missing = [k for k in keys.values() if k not in sealed]
        made: dict[str, tuple[str, str]] = {}  # key -> (sealed, clear): no need to open what was just sealed
        if missing:
            now = self.clock.now()
            length = self.settings.provisioning.password_length
            for k in missing:
                password = generate_password(length)
                made[k] = (self.box.seal(password), password)
            await PendingSecret.bulk_create([
                PendingSecret(key=k, request_id=request_id, sealed=made[k][0], created_at=now) for k in missing],
                ignore_conflicts=True)
            # A racing run may have won some: use its passwords.
            sealed = dict(await PendingSecret.filter(key__in=missing).values_list("key", "sealed")) | sealed

        def clear(key: str) -> str:
            ours = made.get(key)
            return ours[1] if ours is not None and ours[0] == sealed[key] else self.box.open(sealed[key])
        return {pid: (key, clear(key)) for pid, key in keys.items()}

    async def _prepare(self, kind: Kind, request: Request, directory: Provisioner, chunk: list[RequestPerson],
                       avoid: frozenset[str]) -> tuple[dict[int, str], dict[int, str]]:
        """A chunk's passwords and journalled addresses, committed together before its directory calls.

        One transaction (one sync to disk) for the sealed passwords and the chunk's "pending" account rows;
        only an address someone else holds is then looked for row by row, outside it.
        """
        if not chunk:
            return {}, {}
        addressed = kind not in (Kind.DELETE_ACCOUNTS, Kind.PASSWORD_RESET)
        async with in_transaction() as conn:
            # `_passwords` runs in this transaction through tortoise's per-task connection.
            passwords = await self._passwords(request.id, chunk) if kind is not Kind.DELETE_ACCOUNTS else {}
            known = (await self.rows.reserve_bulk(conn, directory, request.id, request.population, chunk)
                     if addressed else {})
        addresses = (await self.rows.reserve_rest(directory, request.id, request.population, chunk, known, avoid)
                     if addressed else {})
        if addressed and isinstance(directory, BatchLookup):
            try:
                await directory.lookup_many(list(addresses.values()))
            except ProvisionError as exc:  # only a speed-up: each create then searches for itself
                log.warning("provisioning request %s: batched look-up failed: %s", request.id, exc.message)
        return {pid: pw for pid, (_, pw) in passwords.items()}, addresses

    async def _who(self, request: Request, directory: Provisioner) -> Who:
        async def last(action: str) -> str:
            event = await AuditEvent.filter(request_id=request.id, action=action).order_by("-id").first()
            return event.actor if event else ""
        executor = await last("request_provision")
        return Who(approved_by=await last("request_approve"),
                   executed_by=f"{executor} ({directory.name})" if executor else f"system ({directory.name})")

    async def _row(self, kind: Kind, request: Request, directory: Provisioner, person: RequestPerson,
                   who: Who, address: str, password: str, avoid: frozenset[str], names: dict[int, Any]) -> Outcome:
        if kind is Kind.DELETE_ACCOUNTS:
            return await self.rows.suspend(directory, person)
        if kind is Kind.PASSWORD_RESET:
            return await self.rows.reset(directory, person, password)
        return await self.rows.create(directory, request.id, request.population, person, address, password, who,
                                      avoid, names.get(person.id))

    async def __call__(self, job: Job) -> None:
        """Provision every person not done yet; then finish, retry, or hand back with the failures listed."""
        request = await Request.get_or_none(id=job.payload.get("request_id"))
        if request is None:
            raise PermanentJobError("request is gone")
        if request.state != State.PROVISIONING.value:
            return  # done already (a re-run job), or handed back
        persons = await RequestPerson.filter(request_id=request.id).order_by("row")
        if not persons:
            await self._hand_back(request, "Yêu cầu không có người nào để thực hiện.")
            return
        kind = Kind(request.kind)
        directory = self.directories.for_population(request.population)
        who = await self._who(request, directory)
        action = {Kind.DELETE_ACCOUNTS: "suspend", Kind.PASSWORD_RESET: "reset"}.get(kind, "create")
        transient: list[ProvisionError] = []
        gate = asyncio.Semaphore(max(1, self.settings.provisioning.concurrency))
        avoid = frozenset(p.proposed_address for p in persons if p.proposed_address)
        progress = _Progress(self, request.id, len(persons), sum(p.outcome == "done" for p in persons))

        async def one(person: RequestPerson, address: str, password: str) -> Outcome:
            async with gate:
                try:
                    return await self._row(kind, request, directory, person, who, address, password, avoid, names)
                except ProvisionError as exc:
                    if not exc.permanent:
                        transient.append(exc)
                    return Outcome(person, action, ok=False, detail=exc.message)
                except Exception as exc:  # a bug or an outage in one row must not lose the others' work
                    log.exception("provisioning request %s row %s", request.id, person.row)
                    transient.append(ProvisionError(type(exc).__name__))
                    return Outcome(person, action, ok=False, detail=f"Lỗi hệ thống: {type(exc).__name__}")

        todo = [p for p in persons if p.outcome != "done"]
        # Rows with no ID, an ID the registry does not know, or a repeat wait for the office's approval.
        held = [p for p in todo if held_back(p)]
        if held:
            await self.rows.skip(held)
        todo = [p for p in todo if not held_back(p)]
        names = await display_names(request.population, todo) if kind in (Kind.NEW_ACCOUNT,
                                                                             Kind.BULK_NEW_ACCOUNTS) else {}
        unnamed = [p for p in todo if not p.proposed_address]
        if unnamed:
            await self.rows.record(directory, request.id, request.population, [
                Outcome(p, action, ok=False, detail=f"{p.full_name}: chưa có địa chỉ thư.") for p in unnamed], who)
        todo = [p for p in todo if p.proposed_address]
        # Chunks, pipelined: while the directory works on one chunk, the previous chunk's outcomes are recorded
        # and the next chunk's passwords and addresses committed (each before its own directory calls), so
        # the database's commits overlap the directory's round trips instead of adding to them.
        size = max(16, 4 * self.settings.provisioning.concurrency)
        chunks = [todo[start:start + size] for start in range(0, len(todo), size)]

        async def run(chunk: list[RequestPerson], ready: tuple[dict[int, str], dict[int, str]]) -> list[Outcome]:
            passwords, addresses = ready
            return list(await asyncio.gather(*(one(p, addresses.get(p.id, p.proposed_address),
                                                   passwords.get(p.id, "")) for p in chunk)))

        async def record(outcomes: list[Outcome]) -> None:
            if outcomes:
                await self.rows.record(directory, request.id, request.population, outcomes, who)
                await progress.done(sum(1 for o in outcomes if o.ok))

        ready = await self._prepare(kind, request, directory, chunks[0] if chunks else [], avoid)
        finished: list[Outcome] = []
        for number, chunk in enumerate(chunks):
            following = chunks[number + 1] if number + 1 < len(chunks) else []
            # A failure cancels the siblings: nothing runs on after the job gave up.
            async with asyncio.TaskGroup() as group:
                running = group.create_task(run(chunk, ready))
                group.create_task(record(finished))
                preparing = group.create_task(self._prepare(kind, request, directory, following, avoid))
            finished, ready = running.result(), preparing.result()
        await record(finished)

        persons = await RequestPerson.filter(request_id=request.id).order_by("row")
        failed = [p for p in persons if p.outcome not in ("done", "skipped")]
        if not failed:
            await self._finish(request, kind, persons, directory)
            return
        if transient and job.attempts < self.settings.jobs.max_attempts:
            await progress.show()
            raise transient[0]  # the worker retries with backoff; rows done stay done
        listed = "; ".join(f"{p.full_name}: {p.outcome_detail}" for p in failed[:5])
        more = f" và {len(failed) - 5} người khác" if len(failed) > 5 else ""
        await self._hand_back(request, f"{len(failed)}/{len(persons)} người chưa thực hiện được — {listed}{more}")

    async def _bump(self, request_id: int) -> None:
        """Show progress: a new version of the card while the request stays in provisioning."""
        async with in_transaction() as conn:
            won = await Request.filter(id=request_id, state=State.PROVISIONING.value).using_db(conn).update(
                version=F("version") + 1)
            if won:
                fresh = await Request.filter(id=request_id).using_db(conn).first()
                if fresh is not None:
                    await enqueue_cards(conn, self.queue, request_id, fresh.version, State.PROVISIONING)
        self.queue.wake()

    async def _leave_provisioning(self, conn: Any, request: Request, state: State, **changes: Any) -> int | None:
        """Move the request out of provisioning; the new version, or None when it has left already.

        Conditional on the state, not the version: a reply or a reassignment during provisioning bumps
        the version, and must not make this run redo every directory call.
        """
        won = await Request.filter(id=request.id, state=State.PROVISIONING.value).using_db(conn).update(
            state=state.value, version=F("version") + 1, updated_at=self.clock.now(), **changes)
        if not won:
            return None
        fresh = await Request.filter(id=request.id).using_db(conn).first()
        return fresh.version if fresh is not None else None

    async def _mail_accounts(self, conn: Any, request: Request, kind: Kind,
                             persons: list[RequestPerson]) -> list[dict[str, Any]]:
        accounts: list[dict[str, Any]] = []
        for p in persons:
            item: dict[str, Any] = {"full_name": p.full_name, "address": p.final_address or p.proposed_address,
                                    "person_id": p.person_id, "result": p.result}
            if kind is not Kind.DELETE_ACCOUNTS:
                item["password_secret"] = password_key(request.id, p)
            accounts.append(item)
        if kind is Kind.DELETE_ACCOUNTS or self.settings.provisioning.delivery == "mail" or not request.sender \
                or not accounts:
            return accounts
        from edudesk.core.accounts.passwordlinks import issue_password_link

        # Link delivery: the mail carries one single-use link; the passwords stay sealed until it is opened,
        # and the link itself stays sealed until the mail goes (the job names only its key).
        sealed_url = await issue_password_link(conn, self.settings, self.clock, self.box, request_id=request.id,
                                               recipient=request.sender, is_list=len(accounts) > 1,
                                               accounts=[{"full_name": a["full_name"], "address": a["address"],
                                                          "password_secret": a["password_secret"]} for a in accounts])
        return [{**{k: v for k, v in a.items() if k != "password_secret"}, "password_link_secret": sealed_url}
                for a in accounts]

    async def _finish(self, request: Request, kind: Kind, persons: list[RequestPerson],
                      directory: Provisioner) -> None:
        now = self.clock.now()
        decision = transition(State.PROVISIONING, Event.PROVISIONED)
        # A run after a row was approved late mails only what the earlier result mails did not carry.
        earlier = await AuditEvent.filter(request_id=request.id, action="request_provisioned")
        mailed = {int(n) for event in earlier for n in (event.detail or {}).get("rows", [])}
        fresh = [p for p in persons if p.outcome == "done" and p.row + 1 not in mailed]
        skipped = [{"row": p.row + 1, "full_name": p.full_name, "person_id": p.person_id}
                   for p in persons if p.outcome == "skipped"]
        async with in_transaction() as conn:
            version = await self._leave_provisioning(conn, request, decision.state, deadline=None)
            if version is None:
                return  # another run finished it
            accounts = await self._mail_accounts(conn, request, kind, fresh)
            await AuditEvent.create(at=now, actor=f"system ({directory.name})", action="request_provisioned",
                                    request_id=request.id, using_db=conn, detail={
                                        "from": State.PROVISIONING.value, "to": decision.state.value,
                                        "label": "Đã thực hiện", "version": version,
                                        "accounts": [{"address": a["address"], "result": a["result"]}
                                                     for a in accounts[:200]], "total": len(accounts),
                                        "rows": [p.row + 1 for p in fresh], "skipped": len(skipped)})
            await enqueue_cards(conn, self.queue, request.id, version, decision.state)
            if request.sender:
                grace = self.settings.provisioning.delete_grace_days
                context = {**mail_context(self.settings, request.sender_name), "number": request.id,
                           "kind": request.kind, "lang": request.lang or self.settings.general.language,
                           "accounts": [{k: v for k, v in a.items() if k != "result"} for a in accounts],
                           "login_url": self.settings.provisioning.login_url,
                           "link_valid_hours": f"{self.settings.provisioning.link_hours:g}",
                           "accounts_sheet": kind is Kind.BULK_NEW_ACCOUNTS or len(accounts) > 1,
                           "grace_days": f"{grace:g}", "skipped": skipped,
                           "delete_on": local_time(now + timedelta(days=grace), self.settings.general.timezone)}
                key = f"done:{request.id}" if not earlier else f"done:{request.id}:{version}"
                await queue_mail(conn, self.queue, self.clock, self.settings, key=key,
                                 template="done", recipient=request.sender, context=context,
                                 request_id=request.id, in_reply_to=request.message_id, automatic=False)
        self.queue.wake()

    async def _hand_back(self, request: Request, message: str) -> None:
        now = self.clock.now()
        decision = transition(State.PROVISIONING, Event.PROVISION_FAILED)
        async with in_transaction() as conn:
            version = await self._leave_provisioning(conn, request, decision.state)
            if version is None:
                return
            await AuditEvent.create(at=now, actor="system", action="request_provision_failed",
                                    request_id=request.id, using_db=conn,
                                    detail={"label": "Lỗi khi thực hiện", "error": message[:500], "version": version})
            await enqueue_cards(conn, self.queue, request.id, version, decision.state)
        log.warning("provisioning request %s failed: %s", request.id, message)
        self.queue.wake()


class _Progress:
    """Counts rows as they finish and edits the card every `progress_every` rows (at most every few seconds)."""

    def __init__(self, job: ProvisionJob, request_id: int, total: int, done: int) -> None:
        self.job, self.request_id, self.total, self.count = job, request_id, total, done
        self.every = max(1, job.settings.provisioning.progress_every)
        self.shown, self.shown_at = done, time.monotonic()

    async def done(self, count: int) -> None:
        """More rows done; show them when enough have gone by."""
        self.count += count
        if self.total > 1 and self.count < self.total and self.count - self.shown >= self.every \
                and time.monotonic() - self.shown_at >= PROGRESS_MIN_SECONDS:
            await self.show()

    async def show(self) -> None:
        """Edit the card now."""
        self.shown, self.shown_at = self.count, time.monotonic()
        await self.job._bump(self.request_id)
