"""`edudesk records replace|withdraw|adjust|revisions`: the life of a record after signing from the command line —
the corrected PDF after an approved Báo sai sót, a withdrawal (thu hồi) or an adjustment (điều chỉnh) of an issued
record with minutes the leadership signs, and a record's chain of revisions (each archived PDF and the signed
minutes written out with --out, for `edudesk records verify`). A refusal is one line `edudesk: …`, exit 2."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edudesk.core.errors import EdudeskError, NotFound
from edudesk.core.people.staff import Actor, Role
from edudesk.core.signing.models import ClassState, SchoolClass, SchoolRecord
from edudesk.core.text import local_time
from edudesk.core.words import words

ADMIN = Actor("cli", "Quản trị (dòng lệnh)", frozenset({Role.ADMIN}))
COMMANDS = ("replace", "withdraw", "adjust", "revisions")


def add_life_parsers(rec: Any, func: Any) -> None:
    """`records replace`, `withdraw`, `adjust` and `revisions` (each sets `func`)."""
    rep = rec.add_parser("replace", help="the corrected PDF of a record whose cancellation (Báo sai sót) was "
                                         "approved: the old revision is archived, signing starts again")
    wd = rec.add_parser("withdraw", help="withdraw (thu hồi) an issued record: minutes the leadership signs")
    adj = rec.add_parser("adjust", help="adjust (điều chỉnh) an issued record: minutes the leadership signs, then "
                                        "the corrected PDF goes through every signature again")
    rev = rec.add_parser("revisions", help="a record's chain of revisions; --out writes each archived PDF and the "
                                           "signed minutes (check them with records verify)")
    for p in (rep, wd, adj, rev):
        p.add_argument("code", help="the student code (Mã HS)")
        p.add_argument("--class", dest="class_name", default="", help="the class, when the student has several")
        p.add_argument("--year", default="", help="the school year, e.g. 2025-2026")
        p.set_defaults(func=func)
    for p in (rep, adj):
        p.add_argument("--pdf", type=Path, required=True, help="the corrected record as the records software "
                                                              "exports it (unsigned)")
    for p in (wd, adj):
        p.add_argument("--reason", required=True)
    rev.add_argument("--out", type=Path, help="write the archived revisions and minutes into this folder")
    rev.add_argument("--json", action="store_true")


async def find_record(code: str, class_name: str = "", year: str = "") -> tuple[SchoolRecord, SchoolClass]:
    """A student's record by code (and class, year); NotFound, or a refusal naming the classes to choose from."""
    query = SchoolRecord.filter(student_code=code).exclude(klass__state=ClassState.MINUTES)
    if class_name:
        query = query.filter(klass__name=class_name)
    if year:
        query = query.filter(klass__year=year)
    found = await query.prefetch_related("klass")
    if not found:
        raise NotFound(f"Không có học bạ của học sinh mã {code}"
                       f"{' ở lớp ' + class_name if class_name else ''}{' năm học ' + year if year else ''}.")
    if len(found) > 1:
        classes = ", ".join(f"{r.klass.name} ({r.klass.year})"
                            for r in sorted(found, key=lambda r: (r.klass.year, r.klass.name)))
        raise EdudeskError(f"Học sinh mã {code} có học bạ ở nhiều lớp: {classes}. Hãy chọn bằng --class (và --year).",
                           code="record_ambiguous")
    return found[0], found[0].klass


async def run_life(app: Any, args: argparse.Namespace) -> int:
    """One of the commands on an opened App."""
    from edudesk.core.signing.changes import start_change
    from edudesk.core.signing.correction import replace_record
    from edudesk.core.signing.lifemodels import ChangeKind

    lang = app.settings.general.language
    w = words(lang)
    record, klass = await find_record(args.code, args.class_name, args.year)
    what = args.records_command
    if what == "revisions":
        return await _revisions(app, args, record, klass)
    if what == "replace":
        done = await replace_record(app.records, ADMIN, record.id, args.pdf.read_bytes())
        await app.worker.drain()
        print(w("cli.life.replaced", name=done.student_name, code=done.student_code, klass=klass.name,
                year=klass.year, n=done.revision + 1))
        return 0
    kind = ChangeKind.WITHDRAWAL if what == "withdraw" else ChangeKind.ADJUSTMENT
    pdf = args.pdf.read_bytes() if kind == ChangeKind.ADJUSTMENT else None
    change = await start_change(app.records, ADMIN, record.id, kind, args.reason, pdf)
    await app.worker.drain()
    print(w(f"cli.life.{kind.value}", number=change.number, name=record.student_name, code=record.student_code,
            klass=klass.name, year=klass.year))
    return 0


async def _revisions(app: Any, args: argparse.Namespace, record: SchoolRecord, klass: SchoolClass) -> int:
    from edudesk.core.signing.revisions import history

    w, tz = words(app.settings.general.language), app.settings.general.timezone
    chain = await history(record, args.out)
    if args.json:
        print(json.dumps({"student_code": record.student_code, "class": klass.name, "year": klass.year,
                          "revision": record.revision, "state": record.state, "revisions": chain},
                         ensure_ascii=False, indent=1))
        return 0
    print(w("cli.life.head", name=record.student_name, code=record.student_code, klass=klass.name, year=klass.year))
    for rev in chain:
        print(w("cli.life.archived", n=rev["revision"] + 1, kind=w.label("life.kind", rev["kind"]),
                at=local_time(rev["at"], tz), by=rev["by"], sha=rev["sha256"][:16], signatures=rev["signatures"],
                reason=rev["reason"]))
        if rev["minutes"]:
            print(w("cli.life.minutes", number=rev["minutes"]["number"], signatures=rev["minutes"]["signatures"]))
        if args.out:
            print(f"   → {args.out / rev['file']}" + (f", {args.out / rev['minutes']['file']}" if rev["minutes"]
                                                       else ""))
    print(w("cli.life.current", n=record.revision + 1, state=w.label("rec.record_states", record.state),
            signatures=record.signatures))
    return 0
