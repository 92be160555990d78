"""The whole signing workflow timed (issue 19), for bench/signing.py: classes of the demo roster (40 students,
12 subject teachers, a homeroom teacher, the principal, the school's issuing signature: 15 signatures a record)
imported into a fresh SQLite database, every teacher's Ký ngay as their turn comes (sessions, turns, notices,
the check after every signature in the pool, the issuing signature with the full validation at issue), then
the admin's confirmation and the export with the full validation of every record in the pool's processes.

Record PDFs are made for DISTINCT students and reused (fpdf takes ~0.3 s a record; not what is measured).
The timed part starts after the import, the credentials and the first turns: what `_sign_demo` of
`edudesk records demo --sign` does, then, timed apart, the export.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

DISTINCT = 12


async def workflow(students: int, classes: int, *, level: str = "B-B") -> dict[str, Any]:
    """Sign `classes` classes of `students` through the workflow; seconds and counts."""
    from edudesk.app import App
    from edudesk.cli.records import ADMIN, _run_due_now, _sign_demo, demo_pin, prepare_demo_pki
    from edudesk.core.config import load_settings
    from edudesk.core.signing.complete import export_class, pool_check
    from edudesk.core.signing.demo import demo_pdf, demo_roster
    from edudesk.core.signing.demotrust import demo_settings
    from edudesk.core.signing.importer import import_roster
    from edudesk.core.signing.models import SignatureStep, SignerCredential, Teacher
    from edudesk.core.signing.roster import Roster

    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.toml"
        config.write_text(f'[general]\ndata_dir = "{tmp}/data"\nlog_level = "WARNING"\n'
                          f'[records]\nltv = "{level}"\n', encoding="utf-8")
        settings = demo_settings(load_settings(str(config), environ={}), with_pin=True)
        app = App(settings, inline_analysis=True)
        await app.open()
        try:
            pki = await prepare_demo_pki(app.settings)
            pin = demo_pin(pki.directory)
            base = demo_roster(students=students, school=settings.records.school)
            row = next(iter(base.classes.values()))
            rows = {}
            for n in range(1, classes + 1):
                name = f"10A{n}"
                rows[name] = dataclasses.replace(row, name=name, students=[
                    (f"HS{n:02d}{i:03d}", s[1], s[2]) for i, s in enumerate(row.students, start=1)])
            roster = Roster(base.teachers, rows)
            made: dict[int, bytes] = {}

            def make(klass: Any, student: tuple[str, str, str], r: Roster) -> bytes:
                index = int(student[0][-3:]) % DISTINCT
                if index not in made:
                    made[index] = demo_pdf(klass, student, r)
                return made[index]

            result = await import_roster(roster, {}, actor=ADMIN, clock=app.clock, make_pdf=make)
            for code, person in roster.teachers.items():
                teacher = await Teacher.get(code=code)
                if not await SignerCredential.filter(teacher_id=teacher.id, state="approved").exists():
                    cred = pki.find(person.name) or pki.issue(person.name)
                    row_ = await app.records.credentials.register(teacher, "pkcs12", actor=ADMIN,
                                                                  pkcs12=cred.pkcs12(b"demo"), passphrase="demo",
                                                                  pin=pin)
                    await app.records.credentials.decide(ADMIN, row_.id, True)
            for class_id in result.class_ids:
                await app.records.start_class(class_id)
            await _run_due_now(app)
            await _warm(app)
            started = time.perf_counter()
            await _sign_demo(app, result.class_ids, pin, lambda done, total: None)
            signing_s = time.perf_counter() - started
            signatures = await SignatureStep.filter(state="signed").count()
            total = await SignatureStep.all().count()
            for class_id in result.class_ids:
                await app.records.confirm_class(ADMIN, class_id)
            started = time.perf_counter()
            exported = 0
            for class_id in result.class_ids:
                manifest = await export_class(class_id, Path(tmp) / "out" / str(class_id),
                                              check=pool_check(app.signers, app.settings))
                exported += len(manifest["records"])
            export_s = time.perf_counter() - started
        finally:
            await app.close()
    return {"students": students * classes, "classes": classes, "signatures": signatures, "steps": total,
            "signing_s": signing_s, "export_s": export_s, "exported": exported}


async def _warm(app: Any) -> None:
    """Start the pool's workers before the clock runs (a service has them running)."""
    from edudesk.core.signing.increment import CheckItem

    await app.signers.pool().check([CheckItem(b"%PDF-1.7\n", (0, ""), "x")] * app.signers.pool().workers,
                                   trusted_roots=())


async def check_costs(level: str = "B-B") -> dict[str, list[float]]:
    """Milliseconds of the check after each of a record's 15 signatures, one process: the check as it was
    before issue 19 (pyHanko validation and difference analysis of the new signature and the one before it,
    re-reading every signature) against `verify.check_new_signature` now (only the new revision)."""
    from edudesk.core.ports import SignItem
    from edudesk.core.signing.engine import LocalCredential, cached_signer, sign_items
    from edudesk.core.signing.increment import proof
    from edudesk.core.signing.pdfs import RecordContent, SubjectScore, add_signature_fields, record_pdf
    from edudesk.core.signing.pki import DemoPki
    from edudesk.core.signing.spec import FieldSpec, Stage
    from edudesk.core.signing.verify import _context, _one, _reader, _split, check_new_signature

    fields = [FieldSpec(f"gvbm_gv{n:02d}", Stage.SUBJECT, f"GV{n:02d}") for n in range(1, 13)] + [
        FieldSpec("gvcn", Stage.HOMEROOM, "GVCN"), FieldSpec("bgh_1", Stage.LEADERSHIP, "HT"),
        FieldSpec("bgh_2", Stage.LEADERSHIP, "PHT")]
    pki = DemoPki.create()
    scores = (SubjectScore("Toán", "Nguyễn Thị Bích", "7,5", "8,0", "7,8", "Chăm chỉ."),)
    pdf = add_signature_fields(record_pdf(RecordContent("Trường THPT Demo", "2025-2026", "10A1", "HS001",
                                                        "Nguyễn Văn An", "01/01/2010", "Nam", "Trần Văn Cường",
                                                        scores, "Tốt", "Khá", "Ngoan.")), fields)
    roots = [pki.root_der]
    before, after = [], []
    for n, spec in enumerate(fields):
        signer = cached_signer(LocalCredential(pkcs12=pki.issue(f"Giáo viên {n}").pkcs12(b"pw"), passphrase=b"pw"))
        [signed] = await sign_items(signer, [SignItem(key=spec.name, pdf=pdf, field=spec.name, certify=n == 0,
                                                      reason="Ký học bạ số", location="Hà Nội", level=level)])
        started = time.perf_counter()
        embedded, _stamps, last = _split(_reader(signed))  # the old check: the last two, with diff analysis
        context = _context(roots, (), None)
        old = [await _one(emb, context, is_last=emb is last) for emb in embedded[-2:]]
        before.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        new = await check_new_signature(signed, proof(pdf), field=spec.name, trusted_roots=roots)
        after.append((time.perf_counter() - started) * 1000)
        assert new.ok and not any(r.problems for r in old), (new.problems, [r.problems for r in old])
        pdf = signed
    return {"before_ms": before, "after_ms": after}
