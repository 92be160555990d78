"""The `provision` job: carry out an approved request in the directory, then tell the requester.

Safe to re-run after a crash at any point: each person's password is generated once and kept sealed
(`PendingSecret`) until the result mail is sent, and every provisioner call is idempotent, so a retry
sets the same password on the same account and queues the same mail (one per key).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from core.config import Settings
from core.domain import Kind
from core.jobs import JobQueue, PermanentJobError
from core.mailqueue import mail_context, queue_mail
from core.models import AuditEvent, Job, PendingSecret, Request, RequestPerson
from core.notify import enqueue_cards
from core.ports import AccountSpec, Clock, Provisioner, ProvisionError
from core.secrets import SecretBox, generate_password
from core.workflow import Event, State, transition

log = logging.getLogger(__name__)


class ProvisionJob:
    """Job handler for `provision` (and the source of the sealed passwords the result mail carries)."""

    def __init__(self, settings: Settings, clock: Clock, queue: JobQueue, provisioner: Provisioner,
                 box: SecretBox) -> None:
        self.settings = settings
        self.clock = clock
        self.queue = queue
        self.provisioner = provisioner
        self.box = box

    async def _password(self, request_id: int, row: int, who: str) -> tuple[str, str]:
        # Keyed by the person, not the row: a corrected list renumbers rows, and row 0 may be someone
        # else; the same person keeps the password an earlier, interrupted run already set.
        key = f"pw:{request_id}:{hashlib.sha256(who.encode()).hexdigest()[:24]}"
        secret = await PendingSecret.get_or_none(key=key)
        if secret is None:
            password = generate_password(self.settings.provisioning.password_length)
            row_ = PendingSecret(key=key, request_id=request_id, sealed=self.box.seal(password),
                                 created_at=self.clock.now())
            await PendingSecret.bulk_create([row_], ignore_conflicts=True)
            secret = await PendingSecret.get(key=key)  # a racing run may have won: use its password
        return key, self.box.open(secret.sealed)

    async def __call__(self, job: Job) -> None:
        """Provision every person of the request; on a refusal, hand it back to technical staff."""
        request = await Request.get_or_none(id=job.payload.get("request_id"))
        if request is None:
            raise PermanentJobError("request is gone")
        if request.state != State.PROVISIONING.value:
            return  # done already (a re-run job), or handed back
        persons = await RequestPerson.filter(request_id=request.id).order_by("row")
        kind = Kind(request.kind)
        accounts: list[dict[str, Any]] = []
        if not persons:
            await self._hand_back(request, "Yêu cầu không có người nào để thực hiện.")
            return
        try:
            for p in persons:
                address = p.proposed_address
                if not address:
                    raise ProvisionError(f"{p.full_name}: chưa có địa chỉ thư.", permanent=True)
                item: dict[str, Any] = {"full_name": p.full_name, "address": address}
                if kind is Kind.DELETE_ACCOUNTS:
                    item["result"] = await self.provisioner.delete(address)
                else:
                    key, password = await self._password(request.id, p.row, p.person_id or p.full_name)
                    if kind is Kind.PASSWORD_RESET:
                        await self.provisioner.reset_password(address, password)
                        item["result"] = "reset"
                    else:
                        data = p.data or {}
                        item["result"] = await self.provisioner.create(AccountSpec(
                            address=address, full_name=p.full_name, population=request.population,
                            person_id=p.person_id, given_name=data.get("given_name", ""),
                            family_name=data.get("family_name", ""), request_id=request.id), password)
                    item["password_secret"] = key
                accounts.append(item)
            await self._finish(request, accounts)
        except ProvisionError as exc:
            if not exc.permanent and job.attempts < self.settings.jobs.max_attempts:
                raise  # the worker retries with backoff
            await self._hand_back(request, exc.message)
        except Exception as exc:
            if job.attempts < self.settings.jobs.max_attempts:
                raise
            # Out of attempts: never leave the request stuck in "provisioning" with no button left.
            await self._hand_back(request, f"Lỗi hệ thống khi thực hiện: {type(exc).__name__}")
            raise PermanentJobError(str(exc)) from exc

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

    async def _finish(self, request: Request, accounts: list[dict[str, Any]]) -> None:
        now = self.clock.now()
        decision = transition(State.PROVISIONING, Event.PROVISIONED)
        async with in_transaction() as conn:
            version = await self._leave_provisioning(conn, request, decision.state, deadline=None)
            if version is None:
                return  # another run finished it
            await AuditEvent.create(at=now, actor=f"system ({self.provisioner.name})", action="request_provisioned",
                                    request_id=request.id, using_db=conn, detail={
                                        "from": State.PROVISIONING.value, "to": decision.state.value,
                                        "label": "Đã thực hiện", "version": version,
                                        "accounts": [{"address": a["address"], "result": a["result"]}
                                                     for a in accounts]})
            await enqueue_cards(conn, self.queue, request.id, version, decision.state)
            if request.sender:
                context = {**mail_context(self.settings, request.sender_name), "number": request.id,
                           "kind": request.kind, "lang": request.lang or self.settings.general.language,
                           "accounts": [{k: v for k, v in a.items() if k != "result"} for a in accounts],
                           "login_url": self.settings.provisioning.login_url}
                await queue_mail(conn, self.queue, self.clock, self.settings, key=f"done:{request.id}",
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
            await AuditEvent.create(at=now, actor=f"system ({self.provisioner.name})",
                                    action="request_provision_failed", request_id=request.id, using_db=conn,
                                    detail={"label": "Lỗi khi thực hiện", "error": message[:500], "version": version})
            await enqueue_cards(conn, self.queue, request.id, version, decision.state)
        log.warning("provisioning request %s failed: %s", request.id, message)
        self.queue.wake()
