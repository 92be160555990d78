"""`edudesk records verify FILE|CLASS [--at YYYY-MM-DD]`, `records refresh-ltv` and the demo's own TSA, OCSP
and CRL service: the long-term side of the records commands (PAdES B-LT / B-LTA)."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from edudesk.cli.mistakes import iso_date
from edudesk.core.config import Settings
from edudesk.core.db import close_database, open_database
from edudesk.core.errors import EdudeskError
from edudesk.core.signing.demotrust import demo_settings
from edudesk.core.words import t


def add_ltv_parsers(rec: Any, func: Any) -> None:
    """`refresh-ltv`, and the long-term flags of `verify` and `demo` (already made by records.add_parser)."""
    ver, demo = rec.choices["verify"], rec.choices["demo"]
    ver.add_argument("--at", type=iso_date, help="also say whether each signature still validates on this date "
                                                 "(YYYY-MM-DD), from what the file carries")
    demo.add_argument("--ltv", default="B-LTA", choices=["B-B", "B-T", "B-LT", "B-LTA"],
                      help="PAdES level of the signed demo records (default B-LTA: a local TSA, OCSP and CRL run "
                           "for the demo)")
    ref = rec.add_parser("refresh-ltv", help="renew the archival timestamp of issued records and their archived "
                                             "revisions before it expires")
    ref.add_argument("--before-days", type=float, default=None,
                     help="renew those whose TSA certificate expires within this many days "
                          "(default [records] refresh_before_days)")
    ref.set_defaults(func=func)


def moment(day: dt.date, timezone: str) -> dt.datetime:
    """Noon of `day` in the office's time zone (the moment `--at` validates at)."""
    return dt.datetime.combine(day, dt.time(12), ZoneInfo(timezone))


async def _inputs(settings: Settings, names: list[Path]) -> list[tuple[str, bytes | OSError]]:
    """(label, bytes or the error reading it) for each file; a name that is no file but a class in the
    database stands for that class's records."""
    out: list[tuple[str, bytes | OSError]] = []
    classes = [n for n in names if not n.exists() and "/" not in str(n) and not str(n).endswith(".pdf")]
    if classes:
        from edudesk.core.signing.models import SchoolClass, SchoolRecord

        await open_database(settings)
        try:
            for name in classes:
                klass = await SchoolClass.filter(name=str(name)).order_by("-id").first()
                if klass is None:
                    raise EdudeskError(f"Không có tệp hay lớp nào tên {name}.", code="not_found")
                for record in await SchoolRecord.filter(klass_id=klass.id).order_by("student_code"):
                    out.append((f"{klass.name}/{record.student_code} {record.student_name}", bytes(record.pdf)))
        finally:
            await close_database()
    for path in names:
        if path in classes:
            continue
        try:
            out.append((str(path), path.read_bytes()))
        except OSError as exc:  # missing, a folder, no permission: that file fails, the others are still checked
            out.append((str(path), exc))
    return out


async def verify_command(settings: Settings, args: argparse.Namespace) -> int:
    """Print each record's signatures with their PAdES level; 1 when any has a problem."""
    from edudesk.cli.records import trust_for_verify
    from edudesk.core.signing.verify import format_report, verify_record

    roots, crls = trust_for_verify(settings)
    tz, lang = settings.general.timezone, args.lang
    if settings.general.log_level != "DEBUG":  # the LTA algorithm's expected dead ends, each with a traceback
        for name in ("pyhanko.sign.validation", "pyhanko_certvalidator"):
            logging.getLogger(name).setLevel(logging.ERROR)
    at = moment(args.at, tz) if getattr(args, "at", None) else None
    bad = 0
    for label, data in await _inputs(settings, list(args.files)):
        if isinstance(data, OSError):
            bad += 1
            reason = data.strerror or type(data).__name__
            print(json.dumps({"file": label, "ok": False, "error": reason}, ensure_ascii=False) if args.json
                  else f"== {label}\n{'cannot read the file' if lang == 'en' else 'không đọc được tệp'}: {reason}")
            continue
        report = await verify_record(data, trusted_roots=roots, crls=crls, ltv=True, at=at)
        ok = report.ok and (at is None or all(s.ltv is not None and s.ltv.valid_at for s in report.signatures))
        bad += not ok
        if args.json:
            print(json.dumps({"file": label, "ok": ok, "at": at.date().isoformat() if at else None,
                              "report": dataclasses.asdict(report)}, ensure_ascii=False, default=str))
        else:
            print(f"== {label}")
            text = format_report(report, lang=lang, timezone=tz, at=at)
            if report.ok and not ok:  # every signature holds today, not all at the date asked about
                text = text.rsplit("\n", 1)[0] + "\n" + t("cli.verify_failed", lang)
            print(text)
    return 1 if bad else 0


async def refresh_command(app: Any, args: argparse.Namespace) -> int:
    """`records refresh-ltv`: renew what is due now; 1 when a renewal failed."""
    from edudesk.core.signing.refresh import refresh_records

    result = await refresh_records(app.settings, app.clock, before_days=args.before_days)
    if app.settings.general.language == "en":
        print(f"Archival timestamps renewed on {result.refreshed} records and {result.revisions_refreshed} archived "
              f"revisions ({result.checked} issued records and {result.revisions_checked} revisions checked"
              f"{f', {result.failed} failed' if result.failed else ''}).")
    else:
        print(f"Đã gia hạn dấu thời gian lưu trữ cho {result.refreshed} học bạ (đã xem {result.checked} học bạ đã "
              f"phát hành{f', {result.failed} tệp chưa gia hạn được' if result.failed else ''}) và "
              f"{result.revisions_refreshed} bản cũ đã lưu trữ (đã xem {result.revisions_checked} bản).")
    return 1 if result.failed else 0


def demo_with_services(settings: Settings, args: argparse.Namespace) -> Settings:
    """The demo's settings; with `--sign` above B-B, its own TSA, OCSP and CRL service started on 127.0.0.1 from
    the demo CA (kept in `args.localpki`; `stop_demo_services` ends it) and `[records]` pointed at it."""
    from edudesk.cli.localpki import LocalPkiService
    from edudesk.core.signing.pki import DemoPki

    demo = demo_settings(settings, with_pin=True)
    level = getattr(args, "ltv", "B-B")
    if not getattr(args, "sign", False) or level == "B-B":
        return demo
    folder = Path(demo.records.crls[0]).parent
    folder.mkdir(parents=True, exist_ok=True)
    pki = DemoPki.open(folder, school=demo.records.school)
    if not pki.service_url and pki.issued:
        print(f"(thư mục demo {folder} có từ trước khi có TSA/OCSP: học bạ demo lần này ký ở mức B-B; xoá thư mục "
              "đó và cơ sở dữ liệu demo rồi chạy lại để có học bạ B-LTA)")
        return demo
    args.localpki = LocalPkiService(pki).start()
    print(f"Dịch vụ TSA/OCSP/CRL thử nghiệm: {args.localpki.url} (chạy trong lúc demo; học bạ ký ở mức {level})")
    records = demo.records.model_copy(update={"tsa_url": args.localpki.tsa_url, "ltv": level})
    return demo.model_copy(update={"records": records})


def stop_demo_services(args: argparse.Namespace) -> None:
    """Stop the demo's TSA, OCSP and CRL service if it runs."""
    service = getattr(args, "localpki", None)
    if service is not None:
        service.stop()
        args.localpki = None
