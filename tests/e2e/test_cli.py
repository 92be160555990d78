"""The `edudesk` command line as staff run it, in a real subprocess on a real config and database."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.hust import with_hust
from tests.mails import registry_xlsx, student_form_mail

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "mail"
PERSON_KEYS = {"full_name", "family_name", "middle_name", "given_name", "student_id", "staff_id", "date_of_birth",
               "unit", "class", "cohort", "mobile", "personal_email", "proposed_address"}


def edudesk(config: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the command line as a user would, from the checkout."""
    done = subprocess.run([sys.executable, "-m", "edudesk", "--config", str(config),
                           *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    if ok:
        assert done.returncode == 0, done.stderr
    return done


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config file of HUST (seed 000's school: its addresses are what these tests expect)."""
    path = tmp_path / "config.toml"
    path.write_text(with_hust(f'[general]\ndata_dir = "{tmp_path / "data"}"\n[intake]\nparser_processes = 1\n'),
                    encoding="utf-8")
    return path


def test_mail_inspect_json_has_the_stable_names_and_stores_nothing(config: Path, tmp_path: Path) -> None:
    eml = tmp_path / "form.eml"
    eml.write_bytes(student_form_mail())
    report = json.loads(edudesk(config, "mail", "inspect", str(eml), "--json").stdout)
    assert (report["kind"], report["population"]) == ("new_account", "student")
    [person] = report["persons"]
    assert PERSON_KEYS <= set(person)
    assert person["full_name"] == "Nguyễn Văn An"
    assert (person["family_name"], person["middle_name"], person["given_name"]) == ("Nguyễn", "Văn", "An")
    assert person["date_of_birth"] == "2003-03-05"  # 05/03/2003 is 5 March
    assert person["mobile"] == "+84912345678"
    assert person["proposed_address"] == "an.nguyenvan@sis.hust.edu.vn"
    assert all({"field", "code", "message"} <= set(p) for p in report["problems"])
    assert not (tmp_path / "data" / "edudesk.sqlite3").exists()  # a dry run


@pytest.mark.parametrize(("fixture", "kind"), [
    ("gmail_vacation_reply.eml", "auto_reply"),
    ("dsn_bounce_multipart_report.eml", "bounce"),
    ("windows1258_body_password_reset.eml", "password_reset"),
])
def test_mail_inspect_names_the_kind_of_mails_from_the_wild(config: Path, fixture: str, kind: str) -> None:
    report = json.loads(edudesk(config, "mail", "inspect", str(FIXTURES / fixture), "--json").stdout)
    assert report["kind"] == kind
    assert set(report["auth"]) == {"spf", "dkim", "dmarc"} and "sender_verified" in report  # in every branch


def test_mail_inspect_tells_whether_a_trusted_server_proved_the_sender(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[general]\ndata_dir = "{tmp_path / "data"}"\n[intake]\nparser_processes = 1\n'
                      'trusted_authserv_ids = ["mx.google.com"]\n', encoding="utf-8")
    passed = json.loads(edudesk(config, "mail", "inspect", str(FIXTURES / "auth_gmail_pass.eml"), "--json").stdout)
    assert (passed["sender_verified"], passed["auth"]) == (True, {"spf": "pass", "dkim": "pass", "dmarc": "pass"})
    forged = json.loads(edudesk(config, "mail", "inspect", str(FIXTURES / "auth_gmail_fail_forged_below.eml"),
                                "--json").stdout)
    assert (forged["sender_verified"], forged["auth"]) == (False, {"spf": "softfail", "dkim": "", "dmarc": "fail"})
    none = json.loads(edudesk(config, "mail", "inspect", str(FIXTURES / "auth_none.eml"), "--json").stdout)
    assert (none["sender_verified"], none["auth"]) == (None, {"spf": "", "dkim": "", "dmarc": ""})
    human = edudesk(config, "mail", "inspect", str(FIXTURES / "auth_gmail_fail_forged_below.eml")).stdout
    assert "Người gửi: chưa xác minh được (SPF: softfail, DKIM: -, DMARC: fail)" in human


def test_db_migrate_says_one_line_and_nothing_else(config: Path) -> None:
    done = edudesk(config, "db", "migrate")  # no tortoise INFO lines for the operator to wade through
    [line] = (done.stdout + done.stderr).strip().splitlines()
    assert line.startswith("edudesk: đã tạo cơ sở dữ liệu mới") and "bảng" in line


def test_registry_import_then_requests_list_show_and_reprocess(config: Path, tmp_path: Path) -> None:
    edudesk(config, "db", "migrate")
    xlsx = registry_xlsx(tmp_path / "sv.xlsx", [("20201234", "Nguyễn Văn An", "05/03/2003", "CNTT-01 K65", "")])
    out = edudesk(config, "registry", "import", str(xlsx), "--population", "student").stdout
    assert "1 mới" in out
    eml = tmp_path / "form.eml"
    eml.write_bytes(student_form_mail(message_id="<cli-1@gmail.com>"))
    # Store it the way the listener does, then let reprocess run intake on it.
    stored = subprocess.run([sys.executable, "-c", STORE, str(config), str(eml)], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert stored.returncode == 0, stored.stderr
    out = edudesk(config, "mail", "reprocess", stored.stdout.strip()).stdout
    assert out.strip().endswith("request_created"), out

    rows = json.loads(edudesk(config, "requests", "list", "--json").stdout)
    assert [(r["number"], r["kind"], r["population"], r["state"], r["people"]) for r in rows] == [
        (1, "new_account", "student", "received", 1)]
    assert {"number", "kind", "population", "state", "people", "problems", "received_at", "deadline"} <= set(rows[0])
    assert json.loads(edudesk(config, "requests", "list", "--state", "rejected", "--json").stdout) == []
    table = edudesk(config, "requests", "list").stdout
    # Staff read the deadline in Vietnam's time and day-first, 24 h after the mail came in.
    deadline = datetime.fromisoformat(rows[0]["deadline"]).astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))
    assert "YC-1" in table and deadline.strftime("%d/%m/%Y %H:%M") in table
    shown = json.loads(edudesk(config, "requests", "show", "1", "--json").stdout)
    assert shown["number"] == 1
    assert shown["persons"][0]["proposed_address"] == "an.nguyenvan@sis.hust.edu.vn"
    assert [m["message_id"] for m in shown["mails"]] == ["cli-1@gmail.com"]
    assert "mail_request_created" in [a["action"] for a in shown["audit"]]
    missing = edudesk(config, "requests", "show", "99", ok=False)
    assert missing.returncode == 2 and "YC-99" in missing.stderr


STORE = """
import asyncio, sys
from pathlib import Path
from edudesk.core.config import load_settings
from edudesk.core.db import open_database, close_database
from edudesk.core.intake.ledger import MailLedger
from edudesk.core.jobs import JobQueue
from edudesk.core.ports import SystemClock

async def main():
    settings = load_settings(sys.argv[1])
    db = await open_database(settings)
    clock = SystemClock()
    result = await MailLedger(JobQueue(clock, settings.jobs), clock, settings).store(
        Path(sys.argv[2]).read_bytes(), source="cli")
    await close_database(db)
    print(result.mail_id)

asyncio.run(main())
"""


def test_staff_add_and_list_with_roles(config: Path) -> None:
    edudesk(config, "staff", "add", "--name", "Lê Thị Văn Phòng", "--telegram-id", "4242", "--role", "office")
    again = edudesk(config, "staff", "add", "--name", "Lê Thị Văn Phòng", "--telegram-id", "4242",
                    "--role", "office", "--role", "head")
    assert "#1" in again.stdout and "head, office" in again.stdout  # same person updated, not doubled
    listed = edudesk(config, "staff", "list").stdout
    assert "Lê Thị Văn Phòng" in listed and "tg:4242" in listed and listed.count("#") == 1
    bad = edudesk(config, "staff", "add", "--name", "X", "--role", "boss", ok=False)
    assert bad.returncode != 0 and "invalid choice" in bad.stderr
    link = edudesk(config, "staff", "login-link", "1").stdout
    assert "http://127.0.0.1:8080/login/" in link and "Lê Thị Văn Phòng" in link
    missing = edudesk(config, "staff", "login-link", "nobody@hust.edu.vn", ok=False)
    assert missing.returncode == 2 and "Không có cán bộ" in missing.stderr


def test_accounts_log_exports_csv_and_xlsx(config: Path, tmp_path: Path) -> None:
    import asyncio

    from openpyxl import load_workbook

    from edudesk.core.accounts.log import record_change
    from edudesk.core.config import load_settings
    from edudesk.core.db import close_database, open_database

    async def seed() -> None:
        await open_database(load_settings(config))
        try:
            at = datetime(2026, 9, 5, 1, 30, tzinfo=ZoneInfo("UTC"))
            await record_change(None, at, action="create", address="huong.pt@sis.hust.edu.vn", backend="ldap",
                                request_id=7, approved_by="Lê Văn Phòng", executed_by="Trần Kỹ Thuật (ldap)",
                                answer="created", full_name="Phạm Thị Hương", person_id="20250001")
        finally:
            await close_database()

    asyncio.run(seed())
    out = edudesk(config, "accounts", "log").stdout
    assert out.startswith("\ufeffThời gian,Thao tác,Địa chỉ")
    assert "2026-09-05 08:30:00,Tạo,huong.pt@sis.hust.edu.vn,Phạm Thị Hương" in out  # local time, Vietnamese
    target = tmp_path / "nhat-ky.xlsx"
    done = edudesk(config, "accounts", "log", "--out", str(target), "--request", "7").stdout
    assert "1 dòng" in done
    sheet = load_workbook(target).active
    assert [c.value for c in sheet[2]][:4] == ["2026-09-05 08:30:00", "Tạo", "huong.pt@sis.hust.edu.vn",
                                                "Phạm Thị Hương"]
    assert "0 dòng" in edudesk(config, "accounts", "log", "--out", str(target), "--request", "8").stdout


@pytest.mark.slow
def test_records_demo_signs_a_class_and_verify_proves_it(config: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "edudesk", "--config", str(config),
                           "records", "demo", "--students", "3", "--sign", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    pdfs = sorted(out.glob("HS*.pdf"))
    assert len(pdfs) == 3
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert len(manifest["records"]) == 3
    report = edudesk(config, "records", "verify", *map(str, pdfs))
    assert report.stdout.count("ĐẠT: mọi chữ ký đều hợp lệ") == 3
    first = report.stdout.split("== ")[1]
    assert first.count("nguyên vẹn có, tin cậy có") == 15 and "chữ ký chứng nhận" in first
    assert first.index("gvbm_") < first.index("gvcn") < first.index("bgh_") < first.index("phat_hanh")
    tampered = bytearray(pdfs[0].read_bytes())
    at = tampered.find(b"/Producer")
    tampered[at + 12] ^= 0x01
    (tmp_path / "sua.pdf").write_bytes(bytes(tampered))
    bad = edudesk(config, "records", "verify", str(tmp_path / "sua.pdf"), str(tmp_path / "khong-co.pdf"), ok=False)
    assert bad.returncode == 1
    assert "KHÔNG ĐẠT" in bad.stdout and "không đọc được tệp" in bad.stdout
    assert "Traceback" not in bad.stderr
