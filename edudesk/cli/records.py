"""`edudesk records ...`: import a roster, run the demo class (optionally signed end to end), verify a
PDF, show progress, export a confirmed class, register and approve signing credentials."""

from __future__ import annotations

import argparse
import os
import secrets
from pathlib import Path
from typing import Any

from edudesk.cli.progress import add_progress_flag, progress
from edudesk.core.config import Settings
from edudesk.core.errors import EdudeskError
from edudesk.core.people.staff import Actor, Role
from edudesk.core.ports import OnProgress
from edudesk.core.signing.demotrust import demo_settings, issuer_pin
from edudesk.core.signing.models import SchoolClass, SignatureStep, SignerCredential, Teacher
from edudesk.core.signing.recordtext import school_name

ADMIN = Actor("cli", "Quản trị (dòng lệnh)", frozenset({Role.ADMIN}))


def add_parser(sub: Any, func: Any) -> None:
    """The `records` command group (each sets `func` and `records_command`)."""
    rec = sub.add_parser("records", help="digital school records (học bạ số)").add_subparsers(
        dest="records_command", required=True)
    imp = rec.add_parser("import", help="import a roster .xlsx and the record PDFs (named <student code>*.pdf)")
    imp.add_argument("roster", type=Path)
    imp.add_argument("--pdfs", type=Path, help="folder of exported record PDFs")
    imp.add_argument("--generate", action="store_true", help="make demo PDFs for students without one")
    demo = rec.add_parser("demo", help="a demo class of 40 students and 12 subject teachers")
    demo.add_argument("--students", type=int, default=40)
    demo.add_argument("--sign", action="store_true", help="run the whole workflow with demo credentials")
    demo.add_argument("--out", type=Path, help="write the signed PDFs and manifest here")
    ver = rec.add_parser("verify", help="check every signature of record PDFs, or of a class's records by its name "
                                        "(exit 1 on any problem)")
    ver.add_argument("files", type=Path, nargs="+")
    ver.add_argument("--json", action="store_true")
    ver.add_argument("--lang", default="vi", choices=["vi", "en"])
    rec.add_parser("progress", help="who is blocking which records, per class and stage")
    exp = rec.add_parser("export", help="write a confirmed class's signed PDFs and manifest")
    exp.add_argument("class_name")
    exp.add_argument("--year", default="")
    exp.add_argument("--out", type=Path, required=True)
    cred = rec.add_parser("credential", help="register a teacher's PKCS#12 (passphrase from EDUDESK_P12_PASSPHRASE), "
                                             "sealed under the teacher's signing PIN")
    cred.add_argument("teacher_code")
    cred.add_argument("--pkcs12", type=Path, required=True)
    cred.add_argument("--pin-env", help="environment variable holding the teacher's signing PIN (else it is asked)")
    appr = rec.add_parser("approve", help="approve (or --reject) a registered credential")
    appr.add_argument("credential_id", type=int)
    appr.add_argument("--reject", action="store_true")
    for p in (imp, demo, exp):
        add_progress_flag(p)
    for p in (imp, demo, ver, exp, cred, appr, rec.choices["progress"]):
        p.set_defaults(func=func)
    from edudesk.cli.records_send import add_send_parsers

    add_send_parsers(rec, func)  # send, sent: the receiving portal
    from edudesk.cli.records_ltv import add_ltv_parsers

    add_ltv_parsers(rec, func)  # refresh-ltv; verify --at, demo --ltv
    from edudesk.cli.records_life import add_life_parsers

    add_life_parsers(rec, func)  # replace, withdraw, adjust, revisions: the life of a record after signing


async def run(app: Any, args: argparse.Namespace) -> int:
    """Dispatch one `records` command on an opened App."""
    what = args.records_command
    if what == "verify":
        from edudesk.cli.records_ltv import verify_command

        return await verify_command(app.settings, args)
    if what == "refresh-ltv":
        from edudesk.cli.records_ltv import refresh_command

        return await refresh_command(app, args)
    if what == "import":
        return await _import(app, args)
    from edudesk.cli.records_life import COMMANDS, run_life

    if what in COMMANDS:
        return await run_life(app, args)
    if what in ("send", "sent"):
        from edudesk.cli.records_send import run_send

        return await run_send(app, args)
    if what == "demo":
        config = Path(args.config) if args.config else Path("config.toml") if Path("config.toml").exists() else None
        from edudesk.cli.records_ltv import stop_demo_services

        try:
            return await run_demo(app, args.students, sign=args.sign, out=args.out, config=config,
                                  show_progress=args.progress)
        finally:
            stop_demo_services(args)
    if what == "progress":
        rows = await app.records.progress(ADMIN)
        print("\n".join(b.text() for b in rows) or "Không còn ai đang chờ ký học bạ.")
        return 0
    if what == "export":
        from edudesk.core.signing.complete import export_class, pool_check

        query = SchoolClass.filter(name=args.class_name)
        klass = await (query.filter(year=args.year) if args.year else query).order_by("-id").first()
        if klass is None:
            raise EdudeskError(f"Không có lớp {args.class_name}.", code="not_found")
        with progress("records_export", app.settings.general.language, forced=args.progress) as on_progress:
            manifest = await export_class(klass.id, args.out, on_progress=on_progress,
                                          check=pool_check(app.signers, app.settings))
        print(f"Đã xuất {len(manifest['records'])} học bạ vào {args.out}")
        return 0
    if what == "credential":
        teacher = await Teacher.get_or_none(code=args.teacher_code)
        if teacher is None:
            raise EdudeskError(f"Không có giáo viên mã {args.teacher_code}.", code="not_found")
        row = await app.records.credentials.register(teacher, "pkcs12", actor=ADMIN,
                                                     pkcs12=args.pkcs12.read_bytes(),
                                                     passphrase=os.environ.get("EDUDESK_P12_PASSPHRASE", ""),
                                                     pin=_teacher_pin(args.pin_env, teacher.name))
        print(f"Đã đăng ký chứng thư số #{row.id} ({row.subject_name}); chờ quản trị viên duyệt.")
        return 0
    if what == "approve":
        row = await app.records.decide_credential(ADMIN, args.credential_id, not args.reject)
        print(f"Chứng thư số #{row.id}: {row.state}")
        return 0
    return 2


def _teacher_pin(env: str | None, name: str) -> str:
    """The signing PIN for a credential registered from the command line: from `--pin-env`, or typed twice."""
    import getpass
    import sys

    from edudesk.core.signing.pin import check_new_pin

    if env:
        if not os.environ.get(env):
            raise EdudeskError(f"Biến môi trường {env} (mã PIN ký) đang trống.", code="pin_format")
        return check_new_pin(os.environ[env])
    if not sys.stdin.isatty():
        raise EdudeskError("Cần mã PIN ký của giáo viên: dùng --pin-env TÊN_BIẾN, hoặc chạy lệnh trong terminal để "
                           "giáo viên tự gõ mã PIN.", code="pin_format")
    pin = getpass.getpass(f"Mã PIN ký của {name} (từ 6 ký tự; giáo viên tự gõ): ")
    return check_new_pin(pin, getpass.getpass("Nhập lại mã PIN: "))


async def _import(app: Any, args: argparse.Namespace) -> int:
    from edudesk.core.signing.demo import demo_pdf
    from edudesk.core.signing.importer import import_roster
    from edudesk.core.signing.roster import read_roster

    if args.pdfs and not args.pdfs.is_dir():  # glob() of a missing folder finds nothing, silently
        raise NotADirectoryError(2, "not a folder", str(args.pdfs)) if args.pdfs.exists() else \
            FileNotFoundError(2, "no such folder", str(args.pdfs / "*.pdf"))
    roster = read_roster(args.roster.read_bytes())
    pdfs: dict[str, bytes] = {}
    if args.pdfs:
        codes = {s[0] for c in roster.classes.values() for s in c.students}
        for path in sorted(args.pdfs.glob("*.pdf")):
            code = next((c for c in codes if path.name.startswith(c)), None)
            if code:
                pdfs[code] = path.read_bytes()
    with progress("records_import", app.settings.general.language, forced=args.progress) as on_progress:
        result = await import_roster(roster, pdfs, actor=ADMIN, clock=app.clock,
                                     make_pdf=demo_pdf if args.generate else None, on_progress=on_progress,
                                     school=school_name(app.settings))
    for class_id in result.class_ids:
        await app.records.start_class(class_id)
    await app.worker.drain()
    print(f"Đã nhập {result.teachers} giáo viên, {result.classes} lớp, {result.records} học bạ mới "
          f"({result.kept} đã có).")
    if result.refused:  # a record that exists is never replaced by an import: records replace / adjust
        print(f"Không thay {len(result.refused)} học bạ đã có bằng tệp mới ({', '.join(result.refused[:10])}): "
              f"dùng edudesk records replace (sau báo sai sót) hoặc records adjust (học bạ đã phát hành).")
    return 0


def trust_for_verify(settings: Settings) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """`[records]` trusted roots and CRLs; without any, the demo CA's (said so on the screen)."""
    from edudesk.core.signing.trust import trust_material

    roots, crls = trust_material(settings)
    if not roots:
        demo = demo_settings(settings)
        if Path(demo.records.trusted_roots[0]).exists():
            print("(chưa cấu hình [records] trusted_roots: tin cậy CA thử nghiệm của `edudesk records demo`)")
            roots, crls = trust_material(demo)
    return roots, crls


async def prepare_demo_pki(settings: Settings) -> Any:
    """The demo CA (kept in demo_dir), its CRL, and the school's credential on SoftHSM2 or in a PKCS#12."""
    from edudesk.core.signing.pkcs11 import load_into_softhsm, write_softhsm_conf
    from edudesk.core.signing.pki import DemoPki

    folder = Path(settings.records.crls[0]).parent
    folder.mkdir(parents=True, exist_ok=True)
    pki = DemoPki.open(folder, school=settings.records.school)
    pin = issuer_pin(folder)
    issuer = settings.records.issuer
    org = pki.find(settings.records.school) or pki.issue_organisation(settings.records.school)
    pki.save(folder)
    (folder / "demo.crl").write_bytes(pki.crl(days=365))
    if issuer.kind == "pkcs11":
        conf = write_softhsm_conf(folder / "softhsm")
        # The PKCS#11 library of this process reads SOFTHSM2_CONF when it first loads: the command line's
        # process environment, set before the token is made or used.
        os.environ["SOFTHSM2_CONF"] = str(conf)
        if not any((folder / "softhsm").iterdir()):
            await load_into_softhsm(conf=conf, token_label=issuer.token_label, so_pin=secrets.token_hex(8),
                                    pin=pin, key_der=org.key_der, cert_der=org.der,
                                    chain=org.chain_der, key_label=issuer.key_label, module=issuer.pkcs11_module)
    elif not Path(issuer.pkcs12_path).exists():
        Path(issuer.pkcs12_path).write_bytes(org.pkcs12(pin.encode()))
    return pki


async def run_demo(app: Any, students: int, *, sign: bool, out: Path | None, config: Path | None = None,
                   show_progress: bool = False) -> int:
    """Import the demo class; with `sign`, every teacher signs (Ký ngay with the demo PIN) as their turn comes.
    `show_progress`: bars on standard error even when it is not a terminal."""
    from edudesk.core.signing.demo import demo_pdf, demo_roster
    from edudesk.core.signing.demotrust import trust_demo_ca
    from edudesk.core.signing.importer import import_roster

    pki = await prepare_demo_pki(app.settings)
    print(trust_demo_ca(config, Path(app.settings.records.trusted_roots[0]), Path(app.settings.records.crls[0])))
    pin = demo_pin(pki.directory)
    roster = demo_roster(students=students, school=school_name(app.settings))
    lang = app.settings.general.language
    with progress("records_demo", lang, forced=show_progress) as on_progress:
        result = await import_roster(roster, {}, actor=ADMIN, clock=app.clock, make_pdf=demo_pdf,
                                     on_progress=on_progress)
    for code, person in roster.teachers.items():
        teacher = await Teacher.get(code=code)
        current = await SignerCredential.filter(teacher_id=teacher.id, state="approved").order_by("-id").first()
        if current is None or "pin_sealed" not in (current.config or {}):  # none yet, or one from before PINs
            cred = pki.find(person.name) or pki.issue(person.name)
            pki.save(pki.directory)
            row = await app.records.credentials.register(teacher, "pkcs12", actor=ADMIN,
                                                         pkcs12=cred.pkcs12(b"demo"), passphrase="demo", pin=pin)
            await app.records.credentials.decide(ADMIN, row.id, True)
    for class_id in result.class_ids:
        await app.records.start_class(class_id)
    await _run_due_now(app)
    print(f"Lớp demo: {result.records} học bạ mới, {len(roster.teachers)} giáo viên; CA thử nghiệm ở {pki.directory}")
    print(f"Mã PIN ký của mọi giáo viên demo: {pin} (lưu ở {pki.directory / 'teacher.pin'})")
    if not sign:
        return 0
    with progress("records_sign", lang, forced=show_progress) as on_progress:
        await _sign_demo(app, result.class_ids, pin, on_progress)
    for class_id in result.class_ids:
        await app.records.confirm_class(ADMIN, class_id)
        if out is not None:
            from edudesk.core.signing.complete import export_class, pool_check

            with progress("records_export", lang, forced=show_progress) as on_export:
                manifest = await export_class(class_id, out, on_progress=on_export,
                                              check=pool_check(app.signers, app.settings))
            print(f"Đã ghi {len(manifest['records'])} học bạ đã ký vào {out}")
            print(f"Kiểm tra: edudesk records verify {out}/*.pdf")
    return 0


async def _sign_demo(app: Any, class_ids: tuple[int, ...], pin: str, on_progress: OnProgress) -> None:
    """Every demo teacher signs (Ký ngay) as their turn comes, round after round, until nothing is open."""
    steps = SignatureStep.filter(record__klass_id__in=class_ids)
    total = await steps.count()
    rounds = 0
    while await SignatureStep.filter(state="open", record__state="signing").exists() and rounds < 50:
        on_progress(await steps.filter(state="signed").count(), total)
        rounds += 1
        turns = await SignatureStep.filter(state="open", teacher_id__isnull=False, session_id__isnull=True,
                                           record__state="signing").distinct().values_list(
            "teacher_id", "record__klass_id", "stage")
        for teacher_id, class_id, stage in sorted(set(turns)):  # one Ký ngay per teacher, class and stage
            teacher = await Teacher.get(id=teacher_id)
            actor = Actor(f"demo:{teacher.code}", teacher.name, frozenset({Role.TEACHER, Role.LEADER}),
                          staff_id=teacher.staff_id)
            try:
                await app.records.start_signing(actor, class_id, stage, pin=pin)
            except EdudeskError:
                pass  # already in a session started this round
        await app.worker.drain()
        await _run_due_now(app)
    on_progress(await steps.filter(state="signed").count(), total)


def demo_pin(folder: Path) -> str:
    """The demo teachers' signing PIN (six digits, made once and kept in the demo folder)."""
    path = folder / "teacher.pin"
    if not path.exists():
        path.write_text(f"{secrets.randbelow(10**6):06d}")
        path.chmod(0o600)
    return path.read_text().strip()


async def _run_due_now(app: Any) -> None:
    """The demo does not wait for debounce delays: jobs scheduled for later run now."""
    from edudesk.core.models import Job

    await Job.filter(state="pending").update(run_after=app.clock.now())
    await app.worker.drain()
