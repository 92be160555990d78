"""Import a roster and its record PDFs: teachers (with a staff identity to be notified), classes, who signs
what, and one record per student with every signature field made before the first signature."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tortoise.transactions import in_transaction

from edudesk.core.models import AuditEvent
from edudesk.core.people.models import Staff
from edudesk.core.people.staff import Actor, Role
from edudesk.core.ports import Clock, OnProgress
from edudesk.core.signing.models import ClassSigner, SchoolClass, SchoolRecord, SignatureStep, Teacher
from edudesk.core.signing.recordtext import class_school
from edudesk.core.signing.roster import ClassRow, Roster, RosterError, TeacherRow
from edudesk.core.signing.spec import STAGE_LABELS, FieldSpec, Stage, field_name

# A record PDF for a student the roster names but the school did not export (demo: a generated one).
MakePdf = Callable[[ClassRow, tuple[str, str, str], Roster], bytes]


@dataclass(frozen=True)
class ImportResult:
    """What one import made (already present rows are counted as kept, not made again)."""

    teachers: int
    classes: int
    records: int
    kept: int
    class_ids: tuple[int, ...]
    refused: tuple[str, ...] = ()  # student codes whose record exists: a new PDF never replaces it here


def field_code(code: str) -> str:
    """A teacher code as part of a PDF field name: ASCII, no '.' (pyHanko reads dots as a field hierarchy)."""
    return re.sub(r"[^a-z0-9_]", "_", code.lower())


def field_label(stage: Stage, name: str, subjects: list[str] | None = None) -> str:
    """What is printed under a signature box: "GVBM Toán, Tin học — Nguyễn Thị B"."""
    if stage == Stage.SUBJECT:
        return f"GVBM {', '.join(subjects or [])} — {name}"
    return f"{STAGE_LABELS[stage]} — {name}" if name else STAGE_LABELS[stage]


def _with_school(roster: Roster, school: str) -> Roster:
    """The roster with every class's school settled (recordtext.class_school); RosterError for another school."""
    try:
        classes = {name: dataclasses.replace(row, school=class_school(row.school, school, row.name))
                   for name, row in roster.classes.items()}
    except ValueError as exc:
        raise RosterError(str(exc)) from None
    return Roster(roster.teachers, classes)


def class_fields(row: ClassRow, teachers: Mapping[str, TeacherRow]) -> list[tuple[FieldSpec, str | None]]:
    """Every signature field of a class's records, in signing order, with the teacher code signing it."""
    out: list[tuple[FieldSpec, str | None]] = []
    for code, subjects in row.subjects.items():
        out.append((FieldSpec(field_name(Stage.SUBJECT, field_code(code)), Stage.SUBJECT,
                              field_label(Stage.SUBJECT, teachers[code].name, subjects)), code))
    out.append((FieldSpec(field_name(Stage.HOMEROOM), Stage.HOMEROOM,
                          field_label(Stage.HOMEROOM, teachers[row.homeroom].name)), row.homeroom))
    for code in row.leaders:
        out.append((FieldSpec(field_name(Stage.LEADERSHIP, field_code(code)), Stage.LEADERSHIP,
                              field_label(Stage.LEADERSHIP, teachers[code].name)), code))
    out.append((FieldSpec(field_name(Stage.ISSUER), Stage.ISSUER, field_label(Stage.ISSUER, row.school)), None))
    return out


async def field_specs(class_id: int, steps: list[SignatureStep]) -> list[FieldSpec]:
    """The fields of a record as the import made them (for re-making it after a cancellation)."""
    klass = await SchoolClass.get(id=class_id)
    out = []
    for step in steps:
        stage = Stage(step.stage)
        if step.teacher_id is None:
            out.append(FieldSpec(step.field, stage, field_label(stage, klass.school)))
            continue
        teacher = await Teacher.get(id=step.teacher_id)
        signer = await ClassSigner.get_or_none(klass_id=class_id, teacher_id=teacher.id, stage=step.stage)
        out.append(FieldSpec(step.field, stage, field_label(stage, teacher.name, signer.subjects if signer else [])))
    return out


async def _teacher(row: TeacherRow, roles: set[str], clock: Clock) -> Teacher:
    """The teacher of a roster row, and a staff identity (matched by e-mail) that holds the signing roles."""
    staff = await Staff.get_or_none(email=row.email) if row.email else None
    if staff is None:
        staff = await Staff.create(name=row.name, email=row.email, roles=sorted(roles), created_at=clock.now())
    elif not roles <= set(staff.roles or []):
        await Staff.filter(id=staff.id).update(roles=sorted(set(staff.roles or []) | roles))
    teacher = await Teacher.get_or_none(code=row.code)
    if teacher is None:
        return await Teacher.create(code=row.code, name=row.name, email=row.email, staff_id=staff.id,
                                    created_at=clock.now())
    await Teacher.filter(id=teacher.id).update(name=row.name, email=row.email, staff_id=staff.id)
    return await Teacher.get(id=teacher.id)


async def import_roster(roster: Roster, pdfs: Mapping[str, bytes], *, actor: Actor, clock: Clock,
                        make_pdf: MakePdf | None = None, on_progress: OnProgress | None = None,
                        school: str = "") -> ImportResult:
    """Store a roster; `pdfs` maps student codes to their exported record. Re-importing keeps what exists.
    `on_progress(done, total)` counts the students (records made or kept). `school` (recordtext.school_name):
    the school of classes whose "Trường" is empty; a roster naming another one is refused before anything."""
    from edudesk.core.signing.pdfs import add_signature_fields

    roster = _with_school(roster, school)

    leaders = {code for c in roster.classes.values() for code in c.leaders}
    teachers: dict[str, Teacher] = {}
    for code, person in roster.teachers.items():
        roles = {Role.TEACHER.value} | ({Role.LEADER.value} if code in leaders else set())
        teachers[code] = await _teacher(person, roles, clock)
    made = kept = 0
    class_ids, refused = [], []
    total = sum(len(c.students) for c in roster.classes.values())
    for row in roster.classes.values():
        missing = [s[0] for s in row.students if s[0] not in pdfs and make_pdf is None]
        if missing:
            raise RosterError(f"Lớp {row.name}: thiếu tệp học bạ của {len(missing)} học sinh "
                              f"({', '.join(missing[:5])}{'…' if len(missing) > 5 else ''}).")
        fields = class_fields(row, roster.teachers)
        now = clock.now()
        klass, _ = await SchoolClass.get_or_create(year=row.year, name=row.name,
                                                   defaults={"school": row.school, "created_at": now})
        class_ids.append(klass.id)
        async with in_transaction() as conn:
            for position, (spec, signer_code) in enumerate(fields):
                if signer_code is None:
                    continue
                subjects = row.subjects.get(signer_code, []) if spec.stage == Stage.SUBJECT else []
                principal = spec.stage == Stage.LEADERSHIP and signer_code == row.principal
                await ClassSigner.bulk_create([ClassSigner(klass_id=klass.id, teacher_id=teachers[signer_code].id,
                                                           stage=int(spec.stage), subjects=subjects,
                                                           position=position, principal=principal)],
                                              ignore_conflicts=True, using_db=conn)
        for student in row.students:
            if on_progress is not None:
                on_progress(made + kept, total)
            if await SchoolRecord.exists(klass_id=klass.id, student_code=student[0]):
                kept += 1
                if student[0] in pdfs and not await SchoolRecord.exists(klass_id=klass.id, student_code=student[0],
                                                                        original=pdfs[student[0]]):
                    refused.append(student[0])  # only records replace / adjust change a record (revisions.py)
                continue
            if student[0] in pdfs:
                exported = pdfs[student[0]]
            else:
                assert make_pdf is not None  # checked above: every missing PDF has a maker
                exported = make_pdf(row, student, roster)
            pdf = add_signature_fields(exported, [spec for spec, _ in fields])
            async with in_transaction() as conn:
                record = await SchoolRecord.create(klass_id=klass.id, student_code=student[0],
                                                   student_name=student[1], original=exported, pdf=pdf,
                                                   updated_at=now, using_db=conn)
                await SignatureStep.bulk_create([
                    SignatureStep(record_id=record.id, stage=int(spec.stage), field=spec.name,
                                  teacher_id=teachers[c].id if c else None) for spec, c in fields],
                    using_db=conn)
            made += 1
    if on_progress is not None:
        on_progress(made + kept, total)
    await AuditEvent.create(at=clock.now(), actor=actor.label, action="records_imported",
                            detail={"classes": [c.name for c in roster.classes.values()], "records": made,
                                    "kept": kept, "teachers": len(teachers), "refused": refused[:50]})
    return ImportResult(len(teachers), len(roster.classes), made, kept, tuple(class_ids), tuple(refused))
