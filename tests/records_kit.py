"""What the records tests share: a demo CA and trust files, a roster, an App with `[records]` set up, teachers
with approved credentials (PKCS#12 or SmartCA through the fake), and the moves of the workflow (tap Ký ngay,
let the clock pass the notice delay, run due jobs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from edudesk.core.models import AuditEvent, Job
from edudesk.core.people.models import Staff
from edudesk.core.people.staff import Actor, Role
from edudesk.core.ports import FakeClock
from edudesk.core.signing.demo import demo_pdf, demo_roster
from edudesk.core.signing.importer import ImportResult, import_roster
from edudesk.core.signing.models import SchoolRecord, SignatureStep, SignerCredential, SignSession, Teacher
from edudesk.core.signing.pki import DemoPki
from edudesk.core.signing.roster import ClassRow, Roster, TeacherRow

ADMIN = Actor("test:admin", "Quản trị viên", frozenset({Role.ADMIN}))
PIN = "246810"  # every test teacher's signing PIN (their PKCS#12 is sealed under it)


def small_roster(students: int = 3) -> Roster:
    """Three subject teachers (GV01 teaches two subjects), GV02 also the homeroom teacher, one principal."""
    teachers = {"GV01": TeacherRow("GV01", "Nguyễn Thị Bích", "gv01@thpt.edu.vn"),
                "GV02": TeacherRow("GV02", "Trần Văn Cường", "gv02@thpt.edu.vn"),
                "GV03": TeacherRow("GV03", "Lê Thị Hoa", "gv03@thpt.edu.vn"),
                "BGH01": TeacherRow("BGH01", "Phạm Quốc Hùng", "bgh01@thpt.edu.vn")}
    row = ClassRow("2025-2026", "10A1", "Trường THPT Lê Quý Đôn", "GV02",
                   subjects={"GV01": ["Toán", "Tin học"], "GV02": ["Ngữ văn"], "GV03": ["Hoá học"]},
                   leaders=["BGH01"])
    row.students = [(f"HS{i:03d}", f"Học Sinh Số {i}", "01/01/2010") for i in range(1, students + 1)]
    return Roster(teachers, {"10A1": row})


def records_settings(tmp_path: Path, pki: DemoPki, extra_roots: tuple[bytes, ...] = (), **records: Any) -> dict:
    """The `[records]` overrides: the demo CA (and e.g. the SmartCA fake's root) trusted, its CRL, an issuer."""
    trust = tmp_path / "trust"
    trust.mkdir(exist_ok=True)
    (trust / "ca.pem").write_bytes(pki.root_pem)
    roots = [str(trust / "ca.pem")]
    for n, der in enumerate(extra_roots):
        (trust / f"extra{n}.der").write_bytes(der)
        roots.append(str(trust / f"extra{n}.der"))
    (trust / "demo.crl").write_bytes(pki.crl(days=3650))
    org = pki.issue_organisation("Trường THPT Lê Quý Đôn")
    (trust / "issuer.p12").write_bytes(org.pkcs12(b"issuer-pass"))
    base = {"school": "Trường THPT Lê Quý Đôn", "trusted_roots": roots, "crls": [str(trust / "demo.crl")],
            "issuer": {"kind": "pkcs12", "pkcs12_path": str(trust / "issuer.p12"),
                       "passphrase_env": "EDUDESK_TEST_ISSUER_PASS"}}
    base.update(records)
    return base


@dataclass
class RecordsKit:
    """One test's records world."""

    app: Any
    pki: DemoPki
    clock: FakeClock
    roster: Roster
    result: ImportResult | None = None
    telegram_ids: dict[str, int] = field(default_factory=dict)

    @property
    def class_id(self) -> int:
        assert self.result is not None
        return self.result.class_ids[0]

    async def load(self, *, credentials: bool = True, skip: tuple[str, ...] = ()) -> None:
        """Import the roster (demo PDFs), give teachers Telegram ids and approved PKCS#12 credentials."""
        self.result = await import_roster(self.roster, {}, actor=ADMIN, clock=self.clock, make_pdf=demo_pdf)
        for n, code in enumerate(self.roster.teachers, start=1):
            teacher = await Teacher.get(code=code)
            self.telegram_ids[code] = 7000 + n
            await Staff.filter(id=teacher.staff_id).update(telegram_id=7000 + n)
            if credentials and code not in skip:
                await self.pkcs12(code)

    async def pkcs12(self, code: str, *, expired: bool = False, approve: bool = True) -> SignerCredential:
        """Register (and approve) a PKCS#12 credential of the demo CA for a teacher."""
        teacher = await Teacher.get(code=code)
        cred = self.pki.issue_expired(teacher.name, now=self.clock.now()) if expired else self.pki.issue(teacher.name)
        desk = self.app.records.credentials
        row = await desk.register(teacher, "pkcs12", actor=ADMIN, pkcs12=cred.pkcs12(b"pw"), passphrase="pw", pin=PIN)
        if approve:
            row = await desk.decide(ADMIN, row.id, True)
        return row

    async def actor(self, code: str) -> Actor:
        """The teacher as the bot sees them."""
        teacher = await Teacher.get(code=code)
        roles = {Role.TEACHER} | ({Role.LEADER} if code.startswith("BGH") else set())
        return Actor(f"tg:{self.telegram_ids.get(code, 0)}", teacher.name, frozenset(roles), staff_id=teacher.staff_id)

    async def start(self) -> None:
        """Open the first stage and let the notice delay pass."""
        await self.app.records.start_class(self.class_id)
        await self.settle()

    async def settle(self, seconds: float = 31.0) -> None:
        """Let time pass (debounced notices, issuing) and run every job that is due."""
        await self.app.worker.drain()
        self.clock.advance(timedelta(seconds=seconds))
        await self.app.worker.drain()

    async def sign(self, code: str, stage: int, *, pin: str | None = PIN) -> SignSession:
        """The teacher signs their turn in the class (Ký ngay with their PIN, as in the console); the jobs run."""
        session = await self.app.records.start_signing(await self.actor(code), self.class_id, stage, pin=pin)
        await self.settle()
        return await SignSession.get(id=session.id)

    async def records(self) -> list[SchoolRecord]:
        return await SchoolRecord.filter(klass_id=self.class_id).order_by("student_code")

    async def notices(self, code: str) -> list[str]:
        """The texts of chat notices queued for a teacher's private chat."""
        teacher = await Teacher.get(code=code)
        jobs = await Job.filter(kind="chat_notice").order_by("id")
        return [j.payload["text"] for j in jobs if j.payload.get("audience") == f"staff:{teacher.staff_id}"]

    async def audit(self, action: str) -> list[AuditEvent]:
        return await AuditEvent.filter(action=action).order_by("id")

    async def open_steps(self, stage: int) -> list[SignatureStep]:
        return await SignatureStep.filter(record__klass_id=self.class_id, stage=stage, state="open")


def demo_class_roster() -> Roster:
    """The full demo class (40 students, 12 subject teachers)."""
    return demo_roster()
