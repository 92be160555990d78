"""The composition root and the `edudesk` command line: reads config, builds adapters, runs them."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from edudesk import __version__
from edudesk.bot.cards import build_card
from edudesk.bot.web.console import WebConsole
from edudesk.bot.web.ops import OpsServer, watch_worker
from edudesk.cli.backup import add_parser as add_backup_parser
from edudesk.cli.init import add_parser as add_init_parser
from edudesk.cli.mistakes import OneLineParser, explain, iso_date
from edudesk.cli.progress import add_progress_flag
from edudesk.cli.records import add_parser as add_records_parser
from edudesk.cli.registryhelp import registry_columns
from edudesk.cli.reports import add_parser as add_reports_parser
from edudesk.core import logsetup
from edudesk.core.chats.hub import ChatHub
from edudesk.core.config import InstitutionSettings, Settings, load_settings
from edudesk.core.db import close_database, open_database
from edudesk.core.errors import EdudeskError
from edudesk.core.intake.checkpoints import DbImapCheckpoints
from edudesk.core.intake.domain import Population
from edudesk.core.intake.ledger import MailLedger
from edudesk.core.intake.pipeline import IntakePipeline
from edudesk.core.intake.sender import own_authserv_id
from edudesk.core.jobs import JobQueue, JobWorker
from edudesk.core.leader import Leadership, lead_each, while_leading
from edudesk.core.people.staff import Role
from edudesk.core.ports import Clock, MailSender, Provisioner, Signer, SystemClock
from edudesk.core.provisioning import Directories
from edudesk.core.provisioning.job import ProvisionJob
from edudesk.core.reports.monthly import MonthlyReportJob, watch_reports
from edudesk.core.requests.overdue import watch_deadlines
from edudesk.core.requests.service import RequestService
from edudesk.core.requests.workflow import State
from edudesk.core.secrets import load_secret_box
from edudesk.core.signing.credentials import CredentialDesk
from edudesk.core.signing.factory import SignerFactory
from edudesk.core.signing.portaljob import PortalSendJob
from edudesk.core.signing.refresh import watch_ltv
from edudesk.core.signing.reminders import watch_signing
from edudesk.core.signing.runner import SignRunner
from edudesk.core.signing.service import RecordService
from edudesk.core.statefiles import PRIVATE_UMASK
from edudesk.core.supervisor import Supervisor
from edudesk.core.text import local_time
from edudesk.core.words import t
from edudesk.directories import make_provisioner
from edudesk.mailer.analyse import InlineMailAnalyser, ProcessMailAnalyser, headers_only
from edudesk.mailer.delivery import MailDelivery
from edudesk.mailer.imap import ImapIntake
from edudesk.mailer.listener import ListenerProcess
from edudesk.mailer.oauth import make_token_source
from edudesk.mailer.outbox import make_mail_sender
from edudesk.mailer.portal_http import make_records_portal
from edudesk.mailer.smtpd import SmtpIntake
from edudesk.resources import email_dir

log = logging.getLogger("edudesk")


class App:
    """Everything wired together for one process."""

    def __init__(self, settings: Settings, *, clock: Clock | None = None, inline_analysis: bool = False,
                 mail_sender: MailSender | None = None, provisioner: Provisioner | None = None,
                 signers: dict[int, Signer] | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.queue = JobQueue(self.clock, settings.jobs)
        self.ledger = MailLedger(self.queue, self.clock, settings)
        self.analyser = InlineMailAnalyser(settings) if inline_analysis else ProcessMailAnalyser(settings)
        self.pipeline = IntakePipeline(settings, self.clock, self.queue, self.analyser, headers_only)
        self.box = load_secret_box(settings)
        self.delivery = MailDelivery(settings, self.clock, mail_sender or make_mail_sender(settings),
                                     email_dir(), self.box, self.queue, self.ledger)
        self.services = RequestService(settings, self.clock, self.queue)
        self.directories = Directories(settings, self.clock, make_provisioner, fixed=provisioner)
        self.provisioning = ProvisionJob(settings, self.clock, self.queue, self.directories, self.box)
        self.chats = ChatHub(settings, self.clock, build_card, self.ledger.report_health)
        self.chats.queue = self.queue
        self.records = RecordService(settings, self.clock, self.queue)
        self.signers = SignerFactory(settings, self.clock, self.box, fixed=signers)
        self.records.credentials = CredentialDesk(settings, self.clock, self.queue, self.box, self.signers)
        self.signing = SignRunner(settings, self.clock, self.queue, self.signers)
        self.worker = JobWorker(self.queue)
        self.monthly = MonthlyReportJob(settings, self.clock, self.queue)
        for part in (self.pipeline, self.delivery, self.chats, self.provisioning, self.signing, self.monthly):
            self.worker.register(part.handlers())
        self.portal = PortalSendJob(settings, self.clock, self.queue, make_records_portal(settings))
        self.worker.register(self.portal.handlers())  # portal_send: issued records to the receiving portal
        self.smtp: SmtpIntake | ListenerProcess | None = None
        if settings.smtpd.enabled:
            self.smtp = (ListenerProcess(settings, self.queue) if settings.smtpd.own_process
                         else SmtpIntake(self.ledger, settings.smtpd, settings.intake))
        self.web = WebConsole(settings, self.clock, self.services, self.records) if settings.web.enabled else None
        if self.web is not None:
            watch_worker(self.web.app, self.worker)  # /readyz: the worker's loop still turns
        self.ops = OpsServer(settings, self.clock) if settings.ops.enabled else None
        if self.ops is not None:
            watch_worker(self.ops.app, self.worker)
        self.telegram: Any = None
        if settings.telegram.enabled:
            from edudesk.bot.telegram import TelegramBot

            self.telegram = TelegramBot(settings, self.clock, self.services, self.records)
            self.chats.add(self.telegram.chat, self.telegram.chats())
        self.zalo: Any = None
        if settings.zalo.enabled:
            from edudesk.bot.zalo.app import ZaloSurface

            self.zalo = ZaloSurface(settings, self.clock, self.queue, self.services, self.records, self.box)
            self.chats.add(self.zalo.chat, {})  # no groups: audiences are the people who chose Zalo
            self.worker.register(self.zalo.handlers())
        self._db: Any = None

    async def open(self) -> None:
        """Migrate and open the database."""
        self._db = await open_database(self.settings)

    async def close(self) -> None:
        """Release processes and connections."""
        self.analyser.close()
        if self.ops is not None:
            await self.ops.stop()
        if self.telegram is not None:
            await self.telegram.close()
        if self.zalo is not None:
            await self.zalo.close()
        await self.directories.close()
        await self.signers.close()
        await close_database(self._db)

    def supervisor(self) -> Supervisor:
        """All long-running parts under one supervisor."""
        sup = Supervisor()
        sup.add("jobs", self.worker.run)
        if self.smtp is not None:
            sup.add("smtp", self.smtp.run)
        # Scheduled work runs on one replica at a time (its conditional updates and job keys hold across a handover).
        url = self.settings.database_url
        deadlines, signing = Leadership(url, "scheduler:deadlines"), Leadership(url, "scheduler:signing")
        sup.add("deadlines", lambda: while_leading(deadlines, lambda: watch_deadlines(self.settings, self.clock,
                                                                                      self.queue)))
        sup.add("signing", lambda: while_leading(signing, lambda: watch_signing(self.settings, self.clock, self.queue)))
        ltv = Leadership(url, "scheduler:ltv")  # archival timestamps renewed before they expire (refresh.py)
        sup.add("ltv", lambda: while_leading(ltv, lambda: watch_ltv(self.settings, self.clock)))
        if self.settings.reports.monthly:
            reports = Leadership(url, "scheduler:reports")
            sup.add("reports", lambda: while_leading(reports, lambda: watch_reports(self.settings, self.clock,
                                                                                    self.queue)))
        if self.web is not None:
            sup.add("web", self.web.run)
        if self.ops is not None:
            sup.add("ops", self.ops.run)
        if self.telegram is not None:
            sup.add("telegram", self.telegram.run)
        if self.zalo is not None:
            sup.add("zalo", self.zalo.run)
        if self.settings.imap.enabled:
            # One IDLE session (and one alert stream) per mailbox: the watcher runs where its lead is held.
            imap = Leadership(url, self._imap().checkpoint_key, what="IMAP watcher")
            sup.add("imap", lambda: lead_each(imap, self._imap))
        return sup

    def _imap(self) -> ImapIntake:
        """A new IMAP watcher (one per term of leadership: a closed watcher does not run again)."""
        return ImapIntake(self.settings.imap, self.settings.secret(self.settings.imap.password_env),
                          self.ledger, checkpoints=DbImapCheckpoints(self.clock), health=self.ledger,
                          max_message_size=self.settings.smtpd.max_message_size,
                          tokens=make_token_source(self.settings, "imap"),
                          mechanism=self.settings.mail_oauth.mechanism, lang=self.settings.general.language,
                          own_authserv_id=own_authserv_id(self.settings.intake))


def _print(data: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    else:
        print(data)


async def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    """Start edudesk and run until interrupted."""
    app = App(settings)
    await app.open()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        # Listen first: a mail is stored (and answered 250) without the parser processes; its job waits for them.
        if app.smtp is not None:
            await app.smtp.start()
            print(f"edudesk: SMTP listener on {settings.smtpd.host}:{app.smtp.port}", flush=True)
        print(f"edudesk: database {settings.database_url.split('@')[-1]}", flush=True)
        print(f"edudesk: outgoing mail -> {settings.outgoing.transport}", flush=True)
        if app.telegram is not None:
            print(f"edudesk: Telegram bot ({settings.telegram.mode}"
                  f"{', shared pace in Redis' if settings.redis_url else ''})", flush=True)
        if app.zalo is not None:
            z = settings.zalo
            kind = "Official Account, webhook" if z.api == "oa" else f"Bot Platform, {z.mode}"
            print(f"edudesk: Zalo ({kind})", flush=True)
        if app.web is not None:
            from edudesk.core.people.webauth import ensure_first_admin

            await app.web.start()  # web.run() under the supervisor keeps serving the started runner
            print(f"edudesk: web console on {app.web.base_url}", flush=True)
            link = await ensure_first_admin(settings, app.clock, base_url=app.web.base_url)
            if link:
                print(f"edudesk: first sign-in as administrator (one use, {settings.web.login_link_minutes:g} "
                      f"minutes): {link}", flush=True)
        if app.ops is not None:
            await app.ops.start()  # ops.run() under the supervisor keeps serving it
            print(f"edudesk: /healthz, /readyz, /metrics on {app.ops.base_url}", flush=True)
        sup = app.supervisor()
        sup.add("parsers", app.analyser.start)  # spawning them takes seconds: in the background, retried if it fails
        if settings.institution == InstitutionSettings():
            # The built-in example school: every mail would be signed as one university until `init` is run.
            print(t("cli.run.unconfigured", settings.general.language, name=settings.institution.name),
                  file=sys.stderr, flush=True)
        async with asyncio.TaskGroup() as tg:
            main = tg.create_task(sup.run())
            await stop.wait()
            app.worker.stop()
            main.cancel()
    except* asyncio.CancelledError:
        pass
    finally:
        await app.close()
    return 0


async def cmd_db_migrate(settings: Settings, args: argparse.Namespace) -> int:
    """Apply schema migrations."""
    from edudesk.cli.dbinfo import migrate_and_tell

    print(await migrate_and_tell(settings))
    return 0


async def cmd_registry_import(settings: Settings, args: argparse.Namespace) -> int:
    """Import the staff or student registry."""
    from edudesk.cli.progress import progress
    from edudesk.core.people.registry import import_registry

    await open_database(settings)
    try:
        with progress("registry", settings.general.language, forced=args.progress) as on_progress:
            result = await import_registry(Path(args.file), Population(args.population), settings, SystemClock(),
                                           on_progress=on_progress)
    finally:
        await close_database()
    print(f"Đã nhập: {result.created} mới, {result.updated} cập nhật, {result.skipped} bỏ qua.")
    for p in result.problems[:50]:
        print(f"  - dòng {(p.row or 0) + 1}: {p.message}")
    return 0


def _sender_line(report: dict[str, Any], lang: str) -> str:
    """One line on whether a trusted server proved the sender (`mail inspect`)."""
    verified = report.get("sender_verified")
    if verified is None:
        return t("cli.inspect.sender_unknown", lang)
    shown = {m: r or "-" for m, r in report.get("auth", {}).items()}
    return t("cli.inspect.sender_verified" if verified else "cli.inspect.sender_unverified", lang, **shown)


async def cmd_mail_inspect(settings: Settings, args: argparse.Namespace) -> int:
    """Dry run: what edudesk reads from a mail (kind, population, people, problems); stores nothing."""
    from edudesk.core.intake.inspect import inspect_mail

    raw = Path(args.file).read_bytes()
    analysis = await InlineMailAnalyser(settings).analyse(raw)
    use_db = settings.database_url.startswith("postgres") or Path(
        settings.database_url.removeprefix("sqlite://")).exists()
    if use_db:
        await open_database(settings, migrate_first=False)
    try:
        report = await inspect_mail(analysis, settings, use_db=use_db)
    finally:
        if use_db:
            await close_database()
    if args.json:
        _print(report, True)
    else:
        print(f"Loại: {report['kind']}   Đối tượng: {report['population']}   Nguồn: {report['source']}")
        print(_sender_line(report, settings.general.language))
        for i, person in enumerate(report["persons"], 1):
            ident = person["student_id"] or person["staff_id"]
            print(f"{i}. {person['full_name']} ({ident}) -> {person['proposed_address'] or '-'}")
        for p in report["problems"]:
            where = f"dòng {p['row'] + 1}: " if p.get("row") is not None else ""
            print(f"  ! {where}{p['message']} [{p['code']}]")
    return 0


async def cmd_mail_reprocess(settings: Settings, args: argparse.Namespace) -> int:
    """Re-run intake on a stored mail."""
    from edudesk.core.intake.reprocess import reprocess_mail

    app = App(settings, inline_analysis=True)
    await app.open()
    try:
        outcome = await reprocess_mail(app.pipeline, args.number)
        await app.worker.drain()
    finally:
        await app.close()
    print(f"edudesk: thư {args.number}: {outcome}")
    return 0


async def cmd_mail_check(settings: Settings, args: argparse.Namespace) -> int:
    """Sign in to the office mailbox as configured and say what works and what to fix (exit 1 on a failure)."""
    from edudesk.cli.mailcheck import report

    screen, ok = await asyncio.to_thread(report, settings, args.lang or settings.general.language)
    print(screen)
    return 0 if ok else 1


async def cmd_requests_list(settings: Settings, args: argparse.Namespace) -> int:
    """List requests."""
    from edudesk.core.requests.queries import list_requests

    await open_database(settings)
    try:
        rows = await list_requests(args.state)
    finally:
        await close_database()
    if args.json:
        _print(rows, True)
        return 0
    print(f"{'Số':>6}  {'Loại':<18} {'Đối tượng':<9} {'Trạng thái':<10} {'Người':>5} {'Lỗi':>4}  Hạn xử lý")
    for r in rows:
        deadline = local_time(r["deadline"], settings.general.timezone) if r["deadline"] else "-"
        print(f"YC-{r['number']:<3}  {r['kind']:<18} {r['population']:<9} {r['state']:<10} {r['people']:>5} "
              f"{r['problems']:>4}  {deadline}")
    return 0


async def cmd_requests_show(settings: Settings, args: argparse.Namespace) -> int:
    """Show one request."""
    from edudesk.core.requests.queries import show_request

    await open_database(settings)
    try:
        data = await show_request(args.number)
    finally:
        await close_database()
    if args.json:
        _print(data, True)
    else:
        from edudesk.cli.requestpage import request_page

        print(request_page(data, settings.general.language, settings.general.timezone))
    return 0


async def cmd_staff_add(settings: Settings, args: argparse.Namespace) -> int:
    """Add or update a staff member with roles."""
    from edudesk.core.people.staff import add_staff

    await open_database(settings)
    try:
        staff = await add_staff(args.name, args.role, email=args.email or "", telegram_id=args.telegram_id,
                                now=SystemClock().now(), merge_roles=not args.set_roles)
    finally:
        await close_database()
    print(f"edudesk: cán bộ #{staff.id} {staff.name}: {', '.join(staff.roles)}")
    return 0


async def cmd_staff_login(settings: Settings, args: argparse.Namespace) -> int:
    """Print a one-time web console sign-in link for a staff member (by id or e-mail)."""
    from edudesk.core.people.models import Staff
    from edudesk.core.people.webauth import issue_login_link

    await open_database(settings)
    try:
        key = str(args.staff)
        staff = await (Staff.get_or_none(email=key) if "@" in key else Staff.get_or_none(id=int(key))
                       if key.isdigit() else Staff.get_or_none(name=key))
        if staff is None:
            raise EdudeskError(f"Không có cán bộ '{key}'.")
        link = await issue_login_link(staff.id, settings, SystemClock(), issued_by="cli")
    finally:
        await close_database()
    print(f"edudesk: liên kết đăng nhập cho {staff.name} (dùng một lần, {settings.web.login_link_minutes:g} phút):")
    print(link)
    return 0


async def cmd_staff_list(settings: Settings, args: argparse.Namespace) -> int:
    """List staff members and their roles (database and config.toml)."""
    from edudesk.core.people.models import Staff

    await open_database(settings)
    try:
        rows = await Staff.all().order_by("id")
    finally:
        await close_database()
    for s in rows:
        state = "" if s.active else " (đã khoá)"
        tg = f" tg:{s.telegram_id}" if s.telegram_id else ""
        zalo = f" zalo:{s.zalo_id}" if s.zalo_id else ""
        via = f" notices:{s.notify_via}" if s.notify_via else ""
        print(f"#{s.id:<4} {s.name}{state}  {s.email}{tg}{zalo}{via}  [{', '.join(s.roles or [])}]")
    for role in ("office", "technical", "head", "admin"):
        keys = getattr(settings.roles, role)
        if keys:
            print(f"config.toml [roles].{role}: {', '.join(keys)}")
    return 0


async def cmd_accounts_log(settings: Settings, args: argparse.Namespace) -> int:
    """Export the account log (every create, reset, suspend and delete) as .csv or .xlsx."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from edudesk.core.accounts.log import export_csv, export_xlsx, log_rows

    tz = ZoneInfo(settings.general.timezone)
    since = datetime.combine(args.since, datetime.min.time(), tzinfo=tz) if args.since else None
    await open_database(settings)
    try:
        rows = await log_rows(since=since, request_id=args.request)
    finally:
        await close_database()
    fmt = args.format or ("xlsx" if args.out and args.out.endswith(".xlsx") else "csv")
    data = (export_xlsx if fmt == "xlsx" else export_csv)(rows, settings.general.language, tz)
    if args.out:
        Path(args.out).write_bytes(data)
        print(f"edudesk: {len(rows)} dòng nhật ký tài khoản → {args.out}")
    else:
        sys.stdout.buffer.write(data)
    return 0


async def cmd_records(settings: Settings, args: argparse.Namespace) -> int:
    """The `records` commands (học bạ số)."""
    from edudesk.cli import records as commands

    if args.records_command == "verify":
        from edudesk.cli.records_ltv import verify_command

        return await verify_command(settings, args)
    if args.records_command == "demo":
        from edudesk.cli.records_ltv import demo_with_services

        settings = demo_with_services(settings, args)  # its own TSA/OCSP/CRL when signing above B-B
    app = App(settings, inline_analysis=True)
    await app.open()
    try:
        return await commands.run(app, args)
    finally:
        await app.close()


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = OneLineParser(prog="edudesk", description="edudesk — bàn trợ giúp CNTT cho nhà trường")
    parser.add_argument("--config", default=None, help="config.toml (default: ./config.toml if present)")
    parser.add_argument("--version", action="version", version=f"edudesk {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    add_init_parser(sub)
    sub.add_parser("run", help="start the service").set_defaults(func=cmd_run)
    db = sub.add_parser("db", help="database").add_subparsers(dest="db_command", required=True)
    db.add_parser("migrate", help="apply schema migrations").set_defaults(func=cmd_db_migrate)
    reg = sub.add_parser("registry", help="staff/student registry").add_subparsers(dest="reg_command",
                                                                                  required=True)
    imp = reg.add_parser("import", help="import an .xlsx or .csv registry export", epilog=registry_columns(),
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    imp.add_argument("file")
    imp.add_argument("--population", choices=["staff", "student"], required=True)
    add_progress_flag(imp)
    imp.set_defaults(func=cmd_registry_import)
    mail = sub.add_parser("mail", help="mail intake").add_subparsers(dest="mail_command", required=True)
    ins = mail.add_parser("inspect", help="show what edudesk reads from a mail, storing nothing")
    ins.add_argument("file")
    ins.add_argument("--json", action="store_true")
    ins.set_defaults(func=cmd_mail_inspect)
    chk = mail.add_parser("check", help="sign in to the office mailbox (IMAP, SMTP) as configured; sends nothing")
    chk.add_argument("--lang", choices=["vi", "en"], default=None, help="default: [general].language")
    chk.set_defaults(func=cmd_mail_check)
    rep = mail.add_parser("reprocess", help="run a stored mail through intake again")
    rep.add_argument("number", type=int)
    rep.set_defaults(func=cmd_mail_reprocess)
    req = sub.add_parser("requests", help="requests").add_subparsers(dest="req_command", required=True)
    lst = req.add_parser("list", help="list requests")
    lst.add_argument("--state", default=None, choices=[s.value for s in State])
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=cmd_requests_list)
    show = req.add_parser("show", help="one request with its audit trail")
    show.add_argument("number", type=int)
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_requests_show)
    staff = sub.add_parser("staff", help="office staff and their roles").add_subparsers(dest="staff_command",
                                                                                       required=True)
    add = staff.add_parser("add", help="add or update a staff member")
    add.add_argument("--name", required=True)
    add.add_argument("--email", default="")
    add.add_argument("--telegram-id", type=int, default=None)
    add.add_argument("--role", action="append", required=True, choices=[r.value for r in Role],
                     help="a role to add (repeatable); a person known by e-mail or Telegram id keeps the others")
    add.add_argument("--set-roles", action="store_true", help="replace the person's roles with the --role ones")
    add.set_defaults(func=cmd_staff_add)
    staff.add_parser("list", help="list staff members").set_defaults(func=cmd_staff_list)
    login = staff.add_parser("login-link", help="print a one-time web console sign-in link")
    login.add_argument("staff", help="staff id, e-mail or exact name")
    login.set_defaults(func=cmd_staff_login)
    add_records_parser(sub, cmd_records)
    add_backup_parser(sub)
    add_reports_parser(sub)
    acc = sub.add_parser("accounts", help="accounts in the directory").add_subparsers(dest="acc_command",
                                                                                      required=True)
    alog = acc.add_parser("log", help="export the account log (.csv or .xlsx)")
    alog.add_argument("--out", help="file to write (.csv or .xlsx); default: CSV on standard output")
    alog.add_argument("--format", choices=["csv", "xlsx"])
    alog.add_argument("--since", type=iso_date, help="from this date (YYYY-MM-DD, local time)")
    alog.add_argument("--request", type=int, help="only this request number")
    alog.set_defaults(func=cmd_accounts_log)
    return parser


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return path.is_dir() and os.access(path, os.W_OK)


def matplotlib_home(settings: Settings) -> None:
    """Give matplotlib (the report charts) a writable config and font-cache folder when its default is not (a
    service user's read-only home): `<data_dir>/matplotlib`, so the cache survives restarts and no warning is
    logged. Set before matplotlib is first imported (charts import it lazily)."""
    if os.environ.get("MPLCONFIGDIR"):
        return
    try:
        home: Path | None = Path.home()
    except RuntimeError:
        home = None
    if home is not None and all(_writable(p) for p in (
            Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config", "matplotlib"),
            Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache", "matplotlib"))):
        return
    own = settings.data_dir / "matplotlib"
    try:
        own.mkdir(mode=0o700, parents=True, exist_ok=True)
        usable = os.access(own, os.W_OK)
    except OSError:
        usable = False
    os.environ["MPLCONFIGDIR"] = str(own) if usable else tempfile.mkdtemp(prefix="edudesk-matplotlib-")


def load(config: str | None) -> Settings:
    """Settings from --config, ./config.toml, or the built-in defaults, under `EDUDESK_<SECTION>__<KEY>`."""
    path = config or ("config.toml" if Path("config.toml").exists() else None)
    return load_settings(path, environ=os.environ)  # the one read of the environment: secrets resolved here


def cli(argv: list[str] | None = None) -> int:
    """Entry point of the `edudesk` command."""
    args = build_parser().parse_args(argv)
    os.umask(PRIVATE_UMASK)  # state files (database, mails, keys) are the office's alone, whatever the shell's umask
    settings: Settings | None = None
    try:
        if args.command == "init":  # writes the config: runs before (and without) reading one
            return int(asyncio.run(args.func(None, args)) or 0)
        settings = load(args.config)
        matplotlib_home(settings)
        logsetup.install(settings.general)  # text (control characters escaped) or JSON; libraries quiet unless DEBUG
        return int(asyncio.run(args.func(settings, args)) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # every mistake is one line; the traceback only with --debug or log level DEBUG
        if args.debug or (settings is not None and settings.general.log_level == "DEBUG"):
            raise
        line, status = explain(exc, settings)
        print(f"edudesk: {line}", file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(cli())
