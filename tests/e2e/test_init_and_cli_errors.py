"""A new school's first hour: `edudesk init`, the example registry, and every command-line mistake answered in
one line with a non-zero exit, in a real subprocess on a real config and database."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from edudesk.core.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
INIT_FLAGS = ("--name", "Trường THPT Chu Văn An", "--short-name", "THPT Chu Văn An", "--domain", "cva.edu.vn",
              "--domain", "hs.cva.edu.vn", "--office-address", "cntt@cva.edu.vn", "--office-unit", "Tổ Tin học",
              "--naming-rule", "{given}{family_initial}{middle_initials}", "--staff-form", "Mẫu 1",
              "--student-form", "Mẫu 2", "--list-form", "Mẫu DS")


def edudesk(*args: str, config: Path | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the command line as a user would (stdin not a terminal), from the checkout."""
    head = ["--config", str(config)] if config is not None else []
    return subprocess.run([sys.executable, "-m", "edudesk", *head, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, input=stdin or "")


def one_line_refusal(done: subprocess.CompletedProcess[str]) -> str:
    """The mistake's one line on stderr, after checking the exit status and that no traceback was shown."""
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[general]\ndata_dir = "{tmp_path / "data"}"\n[intake]\nparser_processes = 1\n',
                    encoding="utf-8")
    return path


def comments(text: str) -> list[str]:
    """Every comment of a TOML text, in order (the part after the first ` #` outside a string, or a # line)."""
    found = []
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            found.append(line.strip())
        else:
            match = re.search(r'^(?:[^"#]|"(?:[^"\\]|\\.)*")*(#.*)$', line)
            if match:
                found.append(match.group(1).strip())
    return found


def test_init_with_flags_writes_a_config_edudesk_reads_with_the_schools_values_and_every_comment(
        tmp_path: Path) -> None:
    target = tmp_path / "config.toml"
    done = edudesk("init", "--config", str(target), *INIT_FLAGS)
    assert done.returncode == 0, done.stderr
    assert "Đã ghi" in done.stdout and "edudesk db migrate" in done.stdout
    settings = load_settings(target)
    inst, naming = settings.institution, settings.naming
    assert inst.name == "Trường THPT Chu Văn An" and inst.short_name == "THPT Chu Văn An"
    assert inst.domains == ("cva.edu.vn", "hs.cva.edu.vn") and inst.office_address == "cntt@cva.edu.vn"
    assert (inst.office_unit, inst.staff_form, inst.student_form, inst.list_form) == (
        "Tổ Tin học", "Mẫu 1", "Mẫu 2", "Mẫu DS")
    assert (naming.rule, naming.staff_domain, naming.student_domain) == (
        "{given}{family_initial}{middle_initials}", "cva.edu.vn", "hs.cva.edu.vn")
    assert settings.outgoing.from_address == "cntt@cva.edu.vn"
    written, shipped = target.read_text(encoding="utf-8"), (ROOT / "config.toml").read_text(encoding="utf-8")
    assert comments(written) == comments(shipped)
    assert len(written.splitlines()) == len(shipped.splitlines())
    assert "hust" not in written.lower() and "Bách khoa" not in written
    # Everything not about the school is the shipped file's.
    assert tomllib.loads(written)["smtpd"] == tomllib.loads(shipped)["smtpd"]


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    target = tmp_path / "config.toml"
    target.write_text("# the school's own settings\n", encoding="utf-8")
    line = one_line_refusal(edudesk("init", "--config", str(target), *INIT_FLAGS))
    assert "--force" in line
    assert target.read_text(encoding="utf-8") == "# the school's own settings\n"
    assert edudesk("init", "--config", str(target), *INIT_FLAGS, "--force").returncode == 0
    assert load_settings(target).institution.name == "Trường THPT Chu Văn An"


@pytest.mark.parametrize(("change", "says"), [
    (("--name", ""), "--name"),  # required and not given (stdin is no terminal: nothing is asked)
    (("--domain", "not a domain"), "tên miền"),
    (("--office-address", "cntt-at-cva"), "địa chỉ thư"),
    (("--naming-rule", "{given}.{surname}"), "{family}"),
])
def test_init_refuses_a_missing_or_wrong_value_in_one_line(tmp_path: Path, change: tuple[str, str],
                                                           says: str) -> None:
    flags = list(INIT_FLAGS)
    if change[0] == "--domain":
        flags[flags.index("--domain") + 1] = change[1]
    else:
        flags[flags.index(change[0]) + 1] = change[1]
    line = one_line_refusal(edudesk("init", "--config", str(tmp_path / "config.toml"), *flags))
    assert says in line
    assert not (tmp_path / "config.toml").exists()


def test_init_says_when_the_office_mailbox_is_outside_the_schools_domains(tmp_path: Path) -> None:
    flags = list(INIT_FLAGS)
    flags[flags.index("--office-address") + 1] = "tinhoc.cva@gmail.com"
    done = edudesk("init", "--config", str(tmp_path / "config.toml"), *flags)
    assert done.returncode == 0 and "tinhoc.cva@gmail.com" in done.stderr and "cva.edu.vn" in done.stderr


def test_the_example_registry_imports_without_a_problem_and_again_without_doubling(config: Path) -> None:
    for name, population, count in (("registry-students.csv", "student", 20), ("registry-staff.csv", "staff", 8)):
        first = edudesk("registry", "import", str(EXAMPLES / name), "--population", population, config=config)
        assert first.returncode == 0, first.stderr
        assert first.stdout.strip() == f"Đã nhập: {count} mới, 0 cập nhật, 0 bỏ qua."  # no problem lines
        again = edudesk("registry", "import", str(EXAMPLES / name), "--population", population, config=config)
        assert again.stdout.strip() == f"Đã nhập: 0 mới, {count} cập nhật, 0 bỏ qua."


def test_registry_import_help_lists_the_columns_it_reads() -> None:
    done = edudesk("registry", "import", "--help")
    assert done.returncode == 0
    for header in ("Họ và tên", "MSSV", "Mã cán bộ", "Ngày sinh", "Lớp", "Số điện thoại", "Email cá nhân",
                   "mssv", "ngay sinh", "personal email"):
        assert header in done.stdout, header


@pytest.mark.parametrize(("args", "says"), [
    (("registry", "import", "no-such-file.xlsx", "--population", "staff"), "no-such-file.xlsx"),
    (("mail", "inspect", "no-such-mail.eml"), "no-such-mail.eml"),
    (("records", "import", "no-such-roster.xlsx"), "no-such-roster.xlsx"),
    (("records", "import", str(EXAMPLES / "registry-staff.csv"), "--pdfs", "/no-such-folder"), "/no-such-folder"),
    (("accounts", "log", "--out", "/no-such-folder/log.csv"), "/no-such-folder"),
    (("accounts", "log", "--since", "2025-13-45"), "2025-13-45"),
    (("requests", "list", "--state", "finished"), "finished"),
    (("requests", "show", "99"), "YC-99"),
])
def test_each_cli_mistake_is_one_line_and_a_non_zero_exit(config: Path, args: tuple[str, ...], says: str) -> None:
    assert says in one_line_refusal(edudesk(*args, config=config))


def test_a_missing_config_file_is_one_line() -> None:
    assert "nowhere.toml" in one_line_refusal(edudesk("requests", "list", config=Path("/nowhere.toml")))


def test_a_database_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "sqlite://{blocker}/db/edudesk.sqlite3"\n', encoding="utf-8")
    one_line_refusal(edudesk("requests", "list", config=config))


def test_run_on_a_port_in_use_names_the_port_and_the_setting(config: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config.write_text(config.read_text() + f"[smtpd]\nport = {port}\n[web]\nenabled = false\n", encoding="utf-8")
        line = one_line_refusal(edudesk("run", config=config))
    assert str(port) in line and "[smtpd] port" in line


def test_db_migrate_says_what_it_made_then_that_nothing_changed(config: Path) -> None:
    first = edudesk("db", "migrate", config=config)
    assert first.returncode == 0 and first.stderr == ""
    assert re.fullmatch(r"edudesk: đã tạo cơ sở dữ liệu mới \S+ \(\d+ bảng, \d+ bước chuyển đổi\)\.\n", first.stdout)
    again = edudesk("db", "migrate", config=config)
    assert again.returncode == 0 and "đã mới nhất" in again.stdout and "không có gì thay đổi" in again.stdout


def test_staff_add_adds_roles_to_a_known_person_and_set_roles_replaces_them(config: Path) -> None:
    person = ("staff", "add", "--name", "Kiều Văn Sơn", "--email", "son.kv@cva.edu.vn")
    assert edudesk(*person, "--role", "office", config=config).stdout.strip().endswith(": office")
    assert edudesk(*person, "--role", "head", config=config).stdout.strip().endswith(": head, office")
    replaced = edudesk(*person, "--role", "technical", "--set-roles", config=config)
    assert replaced.stdout.strip().endswith(": technical")
    listed = edudesk("staff", "list", config=config).stdout
    assert listed.count("Kiều Văn Sơn") == 1 and "[technical]" in listed


def test_requests_show_prints_a_page_for_people_unless_json(config: Path, tmp_path: Path) -> None:
    from tests.e2e.test_cli import STORE
    from tests.mails import student_form_mail

    assert edudesk("db", "migrate", config=config).returncode == 0
    eml = tmp_path / "form.eml"
    eml.write_bytes(student_form_mail(message_id="<show-1@gmail.com>"))
    stored = subprocess.run([sys.executable, "-c", STORE, str(config), str(eml)], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert stored.returncode == 0, stored.stderr
    assert edudesk("mail", "reprocess", stored.stdout.strip(), config=config).returncode == 0
    page = edudesk("requests", "show", "1", config=config)
    assert page.returncode == 0, page.stderr
    text = page.stdout
    assert text.startswith("YC-1  Cấp tài khoản · Sinh viên")
    assert "Trạng thái: Chờ kiểm tra" in text and "Nguyễn Văn An" in text and "Nhật ký:" in text
    assert re.search(r"Nhận lúc: \d\d/\d\d/\d{4} \d\d:\d\d", text)
    assert not text.lstrip().startswith("{")
    assert '"number": 1' in edudesk("requests", "show", "1", "--json", config=config).stdout


@pytest.mark.db
async def test_the_consoles_queue_shows_each_requests_problems(app_factory: Any, settings_factory: Any) -> None:
    import aiohttp

    from edudesk.core.people.models import Staff
    from edudesk.core.people.webauth import issue_login_link
    from edudesk.core.requests.models import Request
    from tests.mails import student_form_mail

    app = await app_factory(settings_factory(web={"port": 0}), inline_analysis=True)
    assert app.web is not None
    await app.web.start()
    url = app.web.base_url
    await app.ledger.store(student_form_mail(message_id="<queue-1@gmail.com>"), source="cli")  # no registry: ✗
    await app.worker.drain()
    [request] = await Request.all()
    staff = await Staff.create(name="Cán bộ văn phòng", roles=["office"], created_at=app.clock.now())
    token = (await issue_login_link(staff.id, app.settings, app.clock, base_url=url)).rsplit("/", 1)[1]
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        async with client.post(f"{url}/login", data={"token": token}, allow_redirects=False) as r:
            assert r.status == 303
        async with client.get(f"{url}/") as r:
            page = await r.text()
    row = page.split(f'data-request="{request.id}"', 1)[1].split("</tr>", 1)[0]
    assert 'class="late problems"' in row and "1 người có lỗi" in row
