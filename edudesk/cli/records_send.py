"""`edudesk records send CLASS [--wait]` and `edudesk records sent CLASS`: queue the upload of an issued class to
the receiving portal (and, with --wait, run it here and print each record's result), and show where each record
stands (chưa gửi / đã gửi / lỗi with the portal's answer). A class that cannot be sent is one line, exit 1."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from edudesk.core.errors import EdudeskError
from edudesk.core.people.staff import Actor, Role
from edudesk.core.signing.sending import SendRow, find_class, request_send, send_rows, tally, waiting_job
from edudesk.core.signing.sendmodels import SendState
from edudesk.core.text import local_time

ADMIN = Actor("cli", "Quản trị (dòng lệnh)", frozenset({Role.ADMIN}))
WORDS = {
    "vi": {"queued": "Đã xếp lịch gửi {n} học bạ lớp {klass} lên Cổng tiếp nhận.",
           "already": "Lớp {klass} đang chờ gửi (hoặc đang gửi) lên Cổng tiếp nhận; không xếp thêm lần gửi nào.",
           "receipt": "biên nhận {receipt}, {at}",
           "summary": "Lớp {klass}: {sent} đã gửi, {failed} lỗi, {unsent} chưa gửi.",
           "retry": "Cổng tiếp nhận chưa nhận hết; lần gửi lại tiếp theo lúc {at}. Dịch vụ edudesk (edudesk run) sẽ "
                    "tự gửi lại; xem kết quả: edudesk records sent {name}"},
    "en": {"queued": "Queued {n} records of class {klass} for the receiving portal.",
           "already": "Class {klass} is already waiting to be sent (or being sent); nothing more was queued.",
           "receipt": "receipt {receipt}, {at}",
           "summary": "Class {klass}: {sent} sent, {failed} failed, {unsent} not sent.",
           "retry": "The portal has not taken everything yet; the next try is at {at}. The edudesk service "
                    "(edudesk run) sends again by itself; see the results: edudesk records sent {name}"},
}


def add_send_parsers(rec: Any, func: Any) -> None:
    """`records send` and `records sent` (each sets `func`)."""
    send = rec.add_parser("send", help="send an issued class's records to the receiving portal ([portal])")
    send.add_argument("class_name")
    send.add_argument("--year", default="")
    send.add_argument("--wait", action="store_true", help="run the upload now and print each record's result")
    sent = rec.add_parser("sent", help="each record's send state: chưa gửi / đã gửi / lỗi with the portal's answer")
    sent.add_argument("class_name")
    sent.add_argument("--year", default="")
    sent.add_argument("--json", action="store_true")
    for p in (send, sent):
        p.set_defaults(func=func)


def row_line(row: SendRow, lang: str, timezone: str) -> str:
    """One record: code, name, state, and the receipt or the portal's answer."""
    detail = row.answer
    if row.state == SendState.SENT:
        at = local_time(row.sent_at, timezone) if row.sent_at else ""
        detail = WORDS[lang]["receipt"].format(receipt=row.receipt, at=at)
        if row.notice:  # a withdrawal's notice: say what was told, not only its receipt
            detail = f"{detail} — {row.answer}"
    return f"{row.student_code:<10} {row.student_name:<30} {row.label(lang):<9} {detail}".rstrip()


async def run_send(app: Any, args: argparse.Namespace) -> int:
    """`records send` / `records sent` on an opened App."""
    lang = "en" if app.settings.general.language == "en" else "vi"
    words, tz = WORDS[lang], app.settings.general.timezone
    try:
        klass = await find_class(args.class_name, args.year)
        label = f"{klass.name} ({klass.year})"
        if args.records_command == "send":
            asked = await request_send(app.records, ADMIN, klass.id)
            print(words["queued" if asked.queued else "already"].format(n=asked.records, klass=label))
    except EdudeskError as exc:
        print(f"edudesk: {exc.in_words(lang)}", file=sys.stderr)
        return 1
    if args.records_command == "send" and not args.wait:
        return 0
    if args.records_command == "send":
        await app.worker.drain()
    rows = await send_rows(klass.id, lang)
    if args.records_command == "sent" and args.json:
        print(json.dumps([{"student_code": r.student_code, "student_name": r.student_name, "state": r.state.value,
                           "receipt": r.receipt, "answer": r.answer, "notice": r.notice or None,
                           "sent_at": r.sent_at.isoformat() if r.sent_at else None} for r in rows],
                         ensure_ascii=False, indent=1))
        return 0
    for row in rows:
        print(row_line(row, lang, tz))
    counts = tally(rows)
    print(words["summary"].format(klass=label, sent=counts[SendState.SENT], failed=counts[SendState.FAILED],
                                  unsent=counts[SendState.UNSENT]))
    waiting = await waiting_job(klass.id)
    if waiting is not None:
        print(words["retry"].format(at=local_time(waiting.run_after, tz), name=klass.name))
    if args.records_command == "sent":
        return 0
    return 0 if counts[SendState.SENT] == len(rows) else 1
