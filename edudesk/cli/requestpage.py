"""`edudesk requests show N` for people: state in words, local dates, persons, problems, audit trail."""

from __future__ import annotations

from typing import Any

from edudesk.core.text import local_time
from edudesk.core.words import detail_pairs, event_label, words


def _problem(p: Any, w: Any) -> str:
    """One finding as a line: where, what, [code]."""
    if not isinstance(p, dict):
        return str(p)
    where = w("cli.show.row", row=p["row"] + 1) + ": " if isinstance(p.get("row"), int) else ""
    code = f" [{p['code']}]" if p.get("code") else ""
    return f"{where}{p.get('message') or p.get('field') or ''}{code}"


def request_page(data: dict[str, Any], lang: str, timezone: str) -> str:
    """The request as lines for a terminal (the `show_request` dict in words)."""
    w = words(lang)
    when = lambda value: local_time(value, timezone) if value else "-"  # noqa: E731
    sender = f"{data['sender_name']} <{data['sender']}>" if data.get("sender_name") else data.get("sender", "")
    lines = [
        f"YC-{data['number']}  {w.label('kind', data['kind'])} · {w.label('population', data['population'])}",
        f"{w('cli.show.state')}: {w.label('state', data['state'])}",
        f"{w('cli.show.sender')}: {sender}",
        f"{w('cli.show.subject')}: {data.get('subject') or '-'}",
        f"{w('cli.show.received')}: {when(data.get('received_at'))}   "
        f"{w('cli.show.deadline')}: {when(data.get('deadline'))}",
    ]
    if data.get("unit"):
        lines.append(f"{w('cli.show.unit')}: {data['unit']}")
    if data.get("flags"):
        lines.append(f"{w('cli.show.flags')}: {', '.join(map(str, data['flags']))}")
    lines.append(f"{w('cli.show.persons', count=len(data.get('persons', [])))}:")
    for i, person in enumerate(data.get("persons", []), 1):
        ident = person.get("student_id") or person.get("staff_id") or "-"
        address = person.get("proposed_address") or person.get("address") or "-"
        lines.append(f"  {i}. {person.get('full_name') or '-'} ({ident}) -> {address}")
        lines.extend(f"     ! {_problem(p, w)}" for p in person.get("problems") or [])
    problems = data.get("problems") or []
    lines.append(f"{w('cli.show.problems', count=len(problems))}:" if problems else w("cli.show.no_problems"))
    lines.extend(f"  ! {_problem(p, w)}" for p in problems)
    lines.append(f"{w('cli.show.audit')}:")
    for event in data.get("audit", []):
        detail = event.get("detail") or {}
        pairs = detail_pairs(((str(k), str(v)) for k, v in detail.items() if not isinstance(v, dict | list)),
                             lang, timezone) if isinstance(detail, dict) else []
        extra = "; ".join(f"{k}: {v}" for k, v in pairs)
        lines.append(f"  {when(event['at'])}  {event_label(event['action'], lang)} — {event['actor']}"
                     + (f" ({extra})" if extra else ""))
    return "\n".join(lines)
