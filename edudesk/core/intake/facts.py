"""What the checks of one request need from the database, read in one query: the people's registry entries,
their accounts, their open requests of the same kind, and the addresses taken near the ones to propose.

`check_request` runs inside the decision (one at a time); six ORM round trips there were six waits for the
database per mail, and every other mail waited behind them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from tortoise.connection import get_connection

from edudesk.core.db import dialect
from edudesk.core.people.models import RegistryEntry
from edudesk.core.requests.workflow import OPEN_STATES
from edudesk.core.text import clean


@dataclass
class Facts:
    """The answers for one request, keyed as the checks use them."""

    entries: dict[str, RegistryEntry] = field(default_factory=dict)  # registry entry by person ID
    accounts: dict[str, str] = field(default_factory=dict)  # person ID -> an account address not deleted
    duplicates: dict[str, int] = field(default_factory=dict)  # person ID -> an open request of the same kind
    taken: set[str] = field(default_factory=set)  # addresses in use that start with a proposed local part


_IDS_PER_PART = 1000  # IN lists stay well under PostgreSQL's 32,767 parameters per statement
_PREFIXES_PER_PART = 100  # OR chains stay under SQLite's expression depth (1,000)
_PARTS_PER_STATEMENT = 30  # and compound SELECTs under SQLite's limit (500)

_Part = tuple[str, list[object]]  # a SELECT with "{}" for each parameter, and the values


def _params(n: int) -> str:
    return ", ".join(["{}"] * n)


def _statements(parts: list[_Part]) -> Iterator[tuple[str, list[object]]]:
    """The parts as UNION ALL statements, parameters in the open connection's style (? or $n)."""
    numbered = dialect() == "postgres"
    for start in range(0, len(parts), _PARTS_PER_STATEMENT):
        chunk = parts[start:start + _PARTS_PER_STATEMENT]
        values = [v for _, vs in chunk for v in vs]
        marks = [f"${i}" if numbered else "?" for i in range(1, len(values) + 1)]
        # "{}" only ever stands for a parameter here; literal braces never occur in these statements.
        yield " UNION ALL ".join(sql for sql, _ in chunk).format(*marks), values


def _any_like(column: str, n: int) -> str:
    return " OR ".join([f"{column} LIKE {{}} ESCAPE '\\'"] * n)


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def registry_facts(population: str, person_ids: list[str], kind: str, exclude_request: int | None,
                         prefixes: Iterable[str] = ()) -> Facts:
    """The facts the checks of one request need, in one statement (a long bulk list: one per 30 parts;
    nothing to read: none)."""
    parts: list[_Part] = []
    cleaned = sorted({clean(p) for p in person_ids if p})
    ids = list(dict.fromkeys(person_ids))
    states = [s.value for s in OPEN_STATES]
    for i in range(0, len(cleaned), _IDS_PER_PART):
        chunk = cleaned[i:i + _IDS_PER_PART]
        parts.append(("SELECT 'e', person_id, full_name, CAST(date_of_birth AS TEXT), class_name, unit, email, 0 "
                      f"FROM registry_entry WHERE population = {{}} AND person_id IN ({_params(len(chunk))})",
                      [population, *chunk]))
    for i in range(0, len(ids), _IDS_PER_PART):
        chunk = ids[i:i + _IDS_PER_PART]
        parts.append(("SELECT 'a', person_id, address, '', '', '', '', id FROM account "
                      f"WHERE person_id IN ({_params(len(chunk))}) AND state <> 'deleted'", list(chunk)))
        parts.append(("SELECT 'd', rp.person_id, '', '', '', '', '', rp.request_id FROM request_person rp "
                      f"JOIN request r ON r.id = rp.request_id WHERE rp.person_id IN ({_params(len(chunk))}) "
                      f"AND r.state IN ({_params(len(states))}) AND r.kind = {{}} AND rp.request_id <> {{}}",
                      [*chunk, *states, kind, exclude_request or 0]))
    likes = [_like_prefix(p) for p in sorted(set(prefixes))]
    for i in range(0, len(likes), _PREFIXES_PER_PART):
        chunk = likes[i:i + _PREFIXES_PER_PART]
        parts.append(("SELECT 't', '', address, '', '', '', '', 0 FROM account WHERE "
                      + _any_like("address", len(chunk)), list(chunk)))
        parts.append(("SELECT 't', '', email, '', '', '', '', 0 FROM registry_entry WHERE "
                      + _any_like("email", len(chunk)), list(chunk)))
        parts.append(("SELECT 't', '', rp.proposed_address, '', '', '', '', 0 FROM request_person rp "
                      "JOIN request r ON r.id = rp.request_id WHERE (" + _any_like("rp.proposed_address", len(chunk))
                      + f") AND r.state IN ({_params(len(states))}) AND rp.request_id <> {{}}",
                      [*chunk, *states, exclude_request or 0]))
    facts = Facts()
    rows: list[Any] = []
    conn = get_connection("default")
    for statement, values in _statements(parts):
        rows.extend((await conn.execute_query(statement, values))[1])
    accounts: list[tuple[int, str, str]] = []
    for tag, pid, text, dob, class_name, unit, email, number in (tuple(r) for r in rows):
        if tag == "e":
            facts.entries[pid] = RegistryEntry(population=population, person_id=pid, full_name=text,
                                               date_of_birth=date.fromisoformat(dob) if dob else None,
                                               class_name=class_name, unit=unit, email=email)
        elif tag == "a":
            accounts.append((int(number), pid, text))
        elif tag == "d":
            facts.duplicates[pid] = int(number)
        else:
            facts.taken.add(str(text).lower())
    facts.accounts = {pid: e.email for pid, e in facts.entries.items() if e.email}
    for _, pid, address in sorted(accounts):
        facts.accounts.setdefault(pid, address)
    return facts
