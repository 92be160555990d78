"""Decisions about one row of a request: approve a row held back, pick the form's spelling of a name, keep a
leaver's account during its grace period; and the mismatches "Hợp lệ" asks about once more.

Like `RequestService.act`, each checks the actor's role and the card's version, writes an audit entry (the
row number only, no personal data) and brings the cards up to date in one transaction.
"""

from __future__ import annotations

import re
from datetime import date
from typing import TYPE_CHECKING, Any

from tortoise.transactions import in_transaction

from edudesk.core.accounts.models import Account
from edudesk.core.chats.notify import enqueue_cards, enqueue_notice
from edudesk.core.errors import EdudeskError, NotFound
from edudesk.core.intake.domain import Kind, Population
from edudesk.core.jobs import JobKind, JobQueue
from edudesk.core.models import AuditEvent
from edudesk.core.people.registry import lookup
from edudesk.core.people.staff import Actor, NotAllowed, Role
from edudesk.core.ports import Clock
from edudesk.core.requests.models import Request, RequestPerson
from edudesk.core.requests.workflow import Event, State, next_deadline, transition
from edudesk.core.text import fold, printable
from edudesk.core.words import words

if TYPE_CHECKING:
    from edudesk.core.config import Settings
    from edudesk.core.requests.service import RequestService

# A row with one of these (as an error) is held back by provisioning until someone approves that row.
HELD_CODES = frozenset({"missing_id", "not_in_registry", "duplicate_in_list"})
# Differences from the registry beyond diacritics: "Hợp lệ" asks once more, naming them.
MISMATCH_CODES = frozenset({"name_mismatch", "dob_mismatch"})
ROW_ROLES = (Role.OFFICE,)  # admin holds every role
# Rows may be approved while the office still decides, and after the request was done (they were skipped).
APPROVABLE = (State.RECEIVED, State.NEED_INFO, State.APPROVED, State.DONE)
NAMEABLE = (State.RECEIVED, State.NEED_INFO, State.APPROVED)
KEEP_WORDS = ("giu lai", "khong xoa", "dung xoa", "keep")
_QUOTE_START = re.compile(r"^(on .+ wrote:|vao .+ da viet:|-{2,} ?original message ?-{2,}|_{10,}|from: .+)$")


class ConfirmNeeded(EdudeskError):
    """"Hợp lệ" over a ✗: the first tap answers with the mismatches; a confirmed second tap approves."""

    code = "confirm_mismatch"

    def __init__(self, request_id: int, lines: dict[str, list[str]]) -> None:
        super().__init__(self._text("vi", request_id, lines["vi"]))
        self.request_id = request_id
        self.lines = lines

    @staticmethod
    def _text(lang: str, request_id: int, lines: list[str]) -> str:
        return "\n".join([words(lang)("rows.confirm_title", id=request_id), *lines])

    def in_words(self, lang: str | None = "vi") -> str:
        """The question with every mismatch, in the surface's language."""
        lang = "en" if lang == "en" else "vi"
        return self._text(lang, self.request_id, self.lines[lang])


def row_errors(person: RequestPerson) -> list[dict[str, Any]]:
    """The errors that hold a row back (no ID, an ID the registry does not know, a repeated row)."""
    return [p for p in person.problems or [] if p.get("severity") == "error" and p.get("code") in HELD_CODES]


def held_back(person: RequestPerson) -> bool:
    """Whether provisioning skips this row: it has such an error and nobody approved the row."""
    return not person.approved_by and bool(row_errors(person))


def with_problem(person: RequestPerson) -> bool:
    """Whether the card counts the row among "người có lỗi" (any error the office has not approved)."""
    return not person.approved_by and any(p.get("severity") == "error" for p in person.problems or [])


def _dob(value: Any) -> str:
    if isinstance(value, date):
        return f"{value:%d/%m/%Y}"
    try:
        return f"{date.fromisoformat(str(value)):%d/%m/%Y}" if value else ""
    except ValueError:
        return str(value)


async def mismatch_rows(request: Request, persons: list[RequestPerson] | None = None,
                        ) -> tuple[dict[str, list[str]], list[int]]:
    """Per language, one line per difference from the registry beyond diacritics ("Dòng 3: ngày sinh …"), and
    the rows (1-based) they are on."""
    persons = persons if persons is not None else await RequestPerson.filter(request_id=request.id).order_by("row")
    found = [(p, {x.get("code") for x in p.problems or [] if x.get("severity") == "error"} & MISMATCH_CODES)
             for p in persons]
    found = [(p, codes) for p, codes in found if codes]
    out: dict[str, list[str]] = {"vi": [], "en": []}
    rows: list[int] = []
    if not found:
        return out, rows
    entries = await lookup(Population(request.population), [p.person_id for p, _ in found])
    for person, codes in found:
        entry = entries.get(person.person_id)
        if entry is None:
            continue  # the registry changed since the check: nothing left to compare
        data = person.data or {}
        before = len(out["vi"])
        for lang in out:
            w = words(lang)
            if "name_mismatch" in codes and fold(person.full_name) != fold(entry.full_name):
                out[lang].append(w("rows.mismatch_name", row=person.row + 1, form=person.full_name,
                                   registry=entry.full_name))
            if "dob_mismatch" in codes and entry.date_of_birth and _dob(data.get("date_of_birth")) != _dob(
                    entry.date_of_birth):
                out[lang].append(w("rows.mismatch_dob", row=person.row + 1, form=_dob(data.get("date_of_birth")),
                                   registry=_dob(entry.date_of_birth)))
        if len(out["vi"]) > before:
            rows.append(person.row + 1)
    return out, rows


def _own_text(text: str) -> str:
    """A reply's own words: quoted lines and everything from the quoted original on are left out (the
    result mail we sent lists every address, so it must not count as the unit naming them)."""
    kept = []
    for line in text.splitlines():
        bare = line.strip()
        if bare.startswith(">"):
            continue
        if _QUOTE_START.match(fold(bare)):
            break
        kept.append(line)
    return "\n".join(kept)


def rows_named(text: str, persons: list[RequestPerson]) -> list[RequestPerson]:
    """The rows a reply asks to keep: it says "giữ lại" / "không xoá" / "keep", and names the ID or address."""
    own = _own_text(text)
    folded = fold(own)
    if not any(re.search(rf"\b{word}\b", folded) for word in KEEP_WORDS):
        return []
    tokens = set(re.findall(r"[\w.+-]+@[\w.-]+|[\w-]+", own.lower()))
    out = []
    for p in persons:
        address = (p.final_address or p.proposed_address).lower()
        if (p.person_id and p.person_id.lower() in tokens) or (address and address in tokens):
            out.append(p)
    return out


class RowDesk:
    """approve_row / use_form_name / keep_account, for the web page and the chat commands and buttons."""

    def __init__(self, service: RequestService) -> None:
        self.service = service
        self.settings: Settings = service.settings
        self.clock: Clock = service.clock
        self.queue: JobQueue = service.queue

    async def _request(self, request_id: int, action: str, actor: Actor, version: int | None,
                       number: int | None = None) -> Request:
        from edudesk.core.requests.service import MAX_ID, AlreadyDecided

        row = {"row": number} if number is not None and 0 < number < 100_000 else {}

        request = await Request.get_or_none(id=request_id) if 0 < request_id < MAX_ID else None
        if request is None:
            raise await self.service.refuse(actor, action, request_id if 0 < request_id < MAX_ID else None,
                                            NotFound(f"Không có yêu cầu số {str(request_id)[:20]}."), **row)
        if not actor.has(*ROW_ROLES):
            raise await self.service.refuse(actor, action, request_id, NotAllowed(
                words("vi")("rows.not_allowed", action=words("vi")(f"rows.action.{action}")), code="not_allowed"),
                **row)
        if version is not None and version != request.version:
            raise await self.service.refuse(actor, action, request_id, AlreadyDecided(
                await self.service._last_decision(request)), version=version, **row)
        return request

    async def _row(self, request: Request, number: int, action: str, actor: Actor) -> RequestPerson:
        person = await RequestPerson.get_or_none(request_id=request.id, row=number - 1) if 0 < number < 100_000 \
            else None
        if person is None:
            raise await self.service.refuse(actor, action, request.id, NotFound(
                words("vi")("rows.no_row", id=request.id, row=str(number)[:8]), code="no_row"), row=number)
        return person

    async def _refused(self, actor: Actor, action: str, request: Request, key: str, number: int,
                       **fields: Any) -> EdudeskError:
        return await self.service.refuse(actor, action, request.id, EdudeskError(
            words("vi")(f"rows.{key}", id=request.id, row=number, **fields), code=f"row_{key}"), row=number)

    async def _commit(self, request: Request, action: str, actor: Actor, number: int, conn: Any,
                      event: Event | None = None, **detail: Any) -> int:
        """Bump the request's version (a card shows the change), audit it, refresh the cards."""
        from edudesk.core.requests.service import AlreadyDecided

        now = self.clock.now()
        old = State(request.state)
        state = transition(old, event).state if event is not None else old
        deadline = next_deadline(old, state, request.deadline, now, self.settings.sla)
        changes: dict[str, Any] = {"state": state.value, "version": request.version + 1, "updated_at": now,
                                   "deadline": deadline}
        if deadline != request.deadline:
            changes.update(reminded_at=None, escalated_at=None)
        if not await Request.filter(id=request.id, version=request.version).using_db(conn).update(**changes):
            raise AlreadyDecided(await self.service._last_decision(request))
        version = request.version + 1
        await AuditEvent.create(at=now, actor=actor.label, action=f"request_{action}", request_id=request.id,
                                using_db=conn, detail={"row": number, "label": words("vi")(f"rows.action.{action}"),
                                                       "from": old.value, "to": state.value, "version": version,
                                                       **detail})
        await enqueue_cards(conn, self.queue, request.id, version, state)
        request.state, request.version = state.value, version
        return version

    async def approve_row(self, request_id: int, number: int, actor: Actor, version: int | None = None) -> Request:
        """The office approves row `number` (1-based) held back for no ID, an unknown ID or a repeat."""
        action = "row_approve"
        request = await self._request(request_id, action, actor, version, number)
        person = await self._row(request, number, action, actor)
        if State(request.state) not in APPROVABLE:
            raise await self._refused(actor, action, request, "not_now", number,
                                      state=words("vi")(f"state.{request.state}"))
        if not row_errors(person):
            raise await self._refused(actor, action, request, "nothing_held", number)
        if person.approved_by:
            raise await self._refused(actor, action, request, "approved_already", number, who=person.approved_by)
        # A row skipped by a finished run sends the request back to the technical staff for it.
        event = Event.ROW_APPROVED if request.state == State.DONE.value and person.outcome == "skipped" else None
        if request.state == State.DONE.value and event is None:
            raise await self._refused(actor, action, request, "not_now", number,
                                      state=words("vi")(f"state.{request.state}"))
        async with in_transaction() as conn:
            await RequestPerson.filter(id=person.id).using_db(conn).update(approved_by=actor.name[:200] or actor.key)
            await self._commit(request, action, actor, number, conn, event,
                               codes=sorted({p.get("code", "") for p in row_errors(person)}))
        self.queue.wake()
        return request

    async def use_form_name(self, request_id: int, number: int, actor: Actor, version: int | None = None, *,
                            form: bool = True) -> Request:
        """The account of row `number` is named as the form writes it (`form`), or back to the registry's."""
        action = "name_form" if form else "name_registry"
        request = await self._request(request_id, action, actor, version, number)
        person = await self._row(request, number, action, actor)
        if State(request.state) not in NAMEABLE or request.kind not in (Kind.NEW_ACCOUNT.value,
                                                                        Kind.BULK_NEW_ACCOUNTS.value):
            raise await self._refused(actor, action, request, "not_now", number,
                                      state=words("vi")(f"state.{request.state}"))
        async with in_transaction() as conn:
            await RequestPerson.filter(id=person.id).using_db(conn).update(name_source="form" if form else "registry")
            await self._commit(request, action, actor, number, conn)
        self.queue.wake()
        return request

    async def keepable(self, request: Request, person: RequestPerson) -> Account | None:
        """The row's account when it is suspended and waiting for its deletion (the grace period runs)."""
        if request.kind != Kind.DELETE_ACCOUNTS.value or person.outcome != "done" or person.result != "suspended":
            return None
        address = person.final_address or person.proposed_address
        account = await Account.get_or_none(address=address) if address else None
        if account is None or account.state != "suspended" or account.delete_after is None or \
                account.delete_after <= self.clock.now():
            return None
        return account

    async def keep_account(self, request_id: int, number: int | None, actor: Actor,
                           version: int | None = None) -> Request:
        """The office keeps the account of row `number` (None: the request's only row) of a deletion."""
        action = "keep_account"
        request = await self._request(request_id, action, actor, version, number)
        if number is None:
            if await RequestPerson.filter(request_id=request.id).count() != 1:
                raise await self._refused(actor, action, request, "which_row", 0)
            number = 1
        person = await self._row(request, number, action, actor)
        await self._keep(request, [person], actor, "office")
        return request

    async def keep_by_reply(self, request_id: int, text: str, sender: str, *, verified: bool = True) -> list[int]:
        """The unit's reply to a deletion asks to keep accounts: the rows it names (ID or address) are kept.

        A reply whose sender no trusted server proved (`verified` False: the sender policy of issue 15) changes
        nothing: the office is asked in its chat to keep the rows by hand, so a forged reply cannot keep a
        leaver's account alive."""
        request = await Request.get_or_none(id=request_id)
        if request is None or request.kind != Kind.DELETE_ACCOUNTS.value or sender.lower() != request.sender.lower():
            return []
        persons = [p for p in rows_named(text, await RequestPerson.filter(request_id=request.id).order_by("row"))
                   if await self.keepable(request, p)]
        if not persons:
            return []
        if not verified:
            numbers = ", ".join(str(p.row + 1) for p in persons)
            text = words(self.settings.general.language)("notice.keep_unverified", number=request.id, rows=numbers)
            async with in_transaction() as conn:
                await AuditEvent.create(at=self.clock.now(), actor="system", action="keep_reply_unverified",
                                        request_id=request.id, detail={"rows": [p.row + 1 for p in persons]},
                                        using_db=conn)
                await enqueue_notice(conn, self.queue, f"keep_unverified:{request.id}:{numbers}", "office", text,
                                     request_id=request.id)
            self.queue.wake()
            return []
        who = Actor(key=f"mail:{printable(request.sender, 200)}", name=request.sender_name[:150],
                    roles=frozenset())
        await self._keep(request, persons, who, "reply")
        return [p.row + 1 for p in persons]

    async def _keep(self, request: Request, persons: list[RequestPerson], actor: Actor, by: str) -> None:
        action = "keep_account"
        now = self.clock.now()
        for person in persons:
            number = person.row + 1
            account = await self.keepable(request, person)
            if account is None:
                raise await self._refused(actor, action, request, "not_waiting", number)
            async with in_transaction() as conn:
                # Conditional: the deletion job deletes only once delete_after has passed; clearing it
                # before then is what makes it never delete this account.
                if not await Account.filter(id=account.id, state="suspended", delete_after__gt=now).using_db(
                        conn).update(delete_after=None, updated_at=now):
                    raise await self._refused(actor, action, request, "not_waiting", number)
                await RequestPerson.filter(id=person.id).using_db(conn).update(result="kept")
                await self._commit(request, action, actor, number, conn, by=by)
                await self.queue.enqueue(JobKind.RESTORE_ACCOUNT, f"restore:{account.address}:{request.id}",
                                         {"address": account.address, "request_id": request.id, "row": number,
                                          "by": by}, connection=conn)
        self.queue.wake()
