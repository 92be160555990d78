"""The "sign now" notice of minutes (biên bản thu hồi / điều chỉnh học bạ): the leadership is asked to sign a
document about ONE student's issued record, not a class's records, so the notice says which — the kind, the
number, the student and class, the reason, what follows once it is signed — with a link to the minutes' PDF.
turns.sign_notice asks for it for a class's minutes book and keeps its own wording for records; the chat (Telegram,
Zalo) and the e-mail fallback carry the text as they carry every notice. Words: `rec.minutes_notice.*`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape as esc
from typing import Any

from edudesk.core.config import Settings
from edudesk.core.signing.lifemodels import RecordChange
from edudesk.core.signing.models import ClassState, SchoolClass, SchoolRecord, SignatureStep
from edudesk.core.text import local_time
from edudesk.core.words import words

SHOWN = 10  # minutes listed in one notice (a busy week of withdrawals); the rest are counted
Rows = list[list[dict[str, Any]]]


@dataclass(frozen=True)
class MinutesNotice:
    """The notice's text (HTML as chats take it) and the button under Ký ngay."""

    text: str
    view: dict[str, Any]  # "Xem biên bản" (the PDF) or "Xem danh sách" (the minutes book's page or list)

    def buttons(self, rows: Rows) -> Rows:
        """The records' buttons with Ký ngay kept and the rest (the list, Báo sai sót) replaced by the view."""
        return [rows[0], [self.view]]


def _link(settings: Settings, minutes_id: int) -> str:
    """The minutes' PDF in the console (its current version), when the console is reachable."""
    return f"{settings.web_url}/records/{minutes_id}/pdf" if settings.web.public_url else ""


async def _facts(minutes_ids: Sequence[int], lang: str, escape: Callable[[str], str]) -> list[tuple[Any, dict]]:
    """(the change, what the notice says of it) for each change whose minutes are among `minutes_ids`."""
    w = words(lang)
    changes = await RecordChange.filter(minutes_id__in=list(minutes_ids)).order_by("id")
    records = {r.id: r for r in await SchoolRecord.filter(id__in=[c.record_id for c in changes]).only(
        "id", "klass_id", "student_code", "student_name")}
    classes = {k.id: k for k in await SchoolClass.filter(id__in=[r.klass_id for r in records.values()])}
    out = []
    for change in changes:
        record = records[change.record_id]
        klass = classes[record.klass_id]
        out.append((change, {"kind": w(f"rec.minutes_notice.kinds.{change.kind}"), "number": escape(change.number),
                             "student": escape(record.student_name), "code": escape(record.student_code),
                             "klass": escape(klass.name), "year": escape(klass.year),
                             "reason": escape(change.reason)}))
    return out


async def minutes_items(lang: str, minutes_ids: Sequence[int]) -> dict[int, str]:
    """For the console's turns: each minutes' one line (number, kind, student, class, reason), plain text."""
    w = words(lang)
    return {change.minutes_id: w("rec.minutes_notice.item", **fact)
            for change, fact in await _facts(minutes_ids, lang, str)}


async def minutes_notice(settings: Settings, book: SchoolClass, steps: Sequence[SignatureStep],
                         deadline: datetime) -> MinutesNotice | None:
    """The notice for the open steps of a minutes book; None for an ordinary class (the records' wording)."""
    if book.state != ClassState.MINUTES:
        return None
    lang = settings.general.language
    w = words(lang)
    found = await _facts([s.record_id for s in steps], lang, esc)  # type: ignore[attr-defined]
    if not found:
        return None
    tail = [w("rec.minutes_notice.role", book=esc(book.name)),
            w("rec.minutes_notice.deadline", when=local_time(deadline, settings.general.timezone))]
    page = f"{settings.web_url}/records/classes/{book.id}?stage={steps[0].stage}" if settings.web.public_url else ""
    if len(found) == 1:
        change, fact = found[0]
        lines = [w(f"rec.minutes_notice.title.{change.kind}"), w("rec.minutes_notice.one", **fact),
                 w("rec.minutes_notice.reason", reason=fact["reason"]), w(f"rec.minutes_notice.after.{change.kind}"),
                 *tail]
        link = _link(settings, change.minutes_id)
        if link:
            lines.append(w("rec.minutes_notice.link", link=esc(link)))
            return MinutesNotice("\n".join(lines), _view(w("rec.minutes_notice.open"), link))
    else:
        lines = [w("rec.minutes_notice.title_many", n=len(found))]
        lines += ["• " + w("rec.minutes_notice.item", **fact) for _, fact in found[:SHOWN]]
        if len(found) > SHOWN:
            lines.append(w("rec.minutes_notice.more", n=len(found) - SHOWN))
        lines += tail
    if page:
        return MinutesNotice("\n".join(lines), _view(w("rec.minutes_notice.list"), page))
    return MinutesNotice("\n".join(lines), {"label": w("rec.minutes_notice.list"), "action": "rec_list",
                                            "request_id": book.id, "arg": steps[0].stage})


def _view(label: str, url: str) -> dict[str, Any]:
    return {"label": label, "action": "noop", "request_id": 0, "url": url}
