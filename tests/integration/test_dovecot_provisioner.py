"""The `dovecot` back end against a real Dovecot reading the passwd-file it writes: accounts log in over
IMAP with their new passwords, suspended and deleted ones do not, lines edudesk did not write are kept."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edudesk.core.accounts.models import Account
from edudesk.core.errors import ConfigError
from edudesk.core.ports import AccountSpec, AddressTaken, ProvisionError
from edudesk.directories import make_provisioner
from edudesk.directories.dovecot import DovecotProvisioner
from edudesk.directories.passwd_file import PasswdFile, parse_line
from tests.conftest import wait_until
from tests.servers.dovecot import DovecotServer, find_dovecot

PASSWORD = "Hs7-kPq2wX9z"  # generated passwords are ASCII; IMAP LOGIN carries nothing else
OTHER = "Tn4!mRv8cB2e"
FOREIGN = ("# hộp thư do quản trị viên tạo bằng tay\n"
           "hieutruong@school.test:{PLAIN}matkhau:5000:5000::/srv/mail/hieutruong::userdb_quota_rule=*:storage=2G\n"
           "\n")


@pytest.fixture
def server() -> Iterator[DovecotServer]:
    """Dovecot whose passdb and userdb read `accounts_path`, the file the back end writes."""
    binary = find_dovecot()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("dovecot is not installed: run scripts/install-test-deps.sh")
        pytest.skip("dovecot is not installed: run scripts/install-test-deps.sh")
    with DovecotServer(binary=binary, accounts_file=True) as running:
        yield running


@pytest.fixture
async def directory_factory(app_factory: Any, settings_factory: Any,
                            server: DovecotServer) -> Callable[..., Any]:
    """The configured back end (`[provisioning] backend`) on an open database, writing the server's file."""

    async def make(backend: str = "dovecot", scheme: str = "SHA512-CRYPT") -> DovecotProvisioner:
        path = str(server.accounts_path)
        settings = settings_factory(provisioning={
            "backend": backend, "local": {"passwd_file": path if backend == "local" else ""},
            "dovecot": {"passwd_file": path, "scheme": scheme, "mail_home": server.home_template}})
        app = await app_factory(settings)
        built = app.directories.by_name(backend)
        assert isinstance(built, DovecotProvisioner)
        return built

    return make


def spec(address: str, key: str = "", person_id: str = "") -> AccountSpec:
    return AccountSpec(address=address, full_name="Nguyễn Thị Hoà", population="student", person_id=person_id,
                       key=key or f"7:{address}")


async def logs_in(server: DovecotServer, user: str, password: str) -> bool:
    return await asyncio.to_thread(server.can_log_in, user, password)


async def comes_to(server: DovecotServer, user: str, password: str, expected: bool) -> None:
    # Dovecot looks at the file at most once a second (and re-reads it when its size or mtime changed).
    async def settled() -> bool:
        return await logs_in(server, user, password) is expected

    await wait_until(settled, timeout=5.0, interval=0.2)


def lines_of(server: DovecotServer, user: str) -> list[str]:
    return [line for line in server.accounts_path.read_text().splitlines() if line.startswith(user + ":")]


@pytest.mark.db
@pytest.mark.parametrize("scheme", ["SHA512-CRYPT", "BLF-CRYPT"])
async def test_created_account_logs_in_over_imap_and_a_wrong_password_fails(
        directory_factory: Any, server: DovecotServer, scheme: str) -> None:
    directory = await directory_factory(scheme=scheme)
    assert directory.name == "dovecot"
    assert await directory.create(spec("an.nv@school.test"), PASSWORD) == "created"
    await comes_to(server, "an.nv@school.test", PASSWORD, True)
    assert not await logs_in(server, "an.nv@school.test", OTHER)
    [line] = lines_of(server, "an.nv@school.test")
    entry = parse_line(line)
    assert entry is not None and entry.password.startswith("{" + scheme + "}") and PASSWORD not in line
    assert entry.home == f"{server.root}/home/school.test/an.nv"
    assert (Path(entry.home) / "Maildir").is_dir()  # Dovecot made the mailbox where the line says
    row = await Account.get(address="an.nv@school.test")
    assert row.state == "active" and row.backend == "dovecot"


@pytest.mark.db
async def test_suspended_account_cannot_log_in_and_its_line_stays(directory_factory: Any,
                                                                  server: DovecotServer) -> None:
    directory = await directory_factory()
    await directory.create(spec("binh.tt@school.test"), PASSWORD)
    await comes_to(server, "binh.tt@school.test", PASSWORD, True)
    assert await directory.suspend("binh.tt@school.test") == "suspended"
    await comes_to(server, "binh.tt@school.test", PASSWORD, False)
    [line] = lines_of(server, "binh.tt@school.test")
    assert line.endswith(":nologin=y")
    entry = await directory.lookup("binh.tt@school.test")
    assert entry is not None and entry.state == "suspended"
    assert await directory.suspend("binh.tt@school.test") == "suspended"  # idempotent
    assert await directory.suspend("khong.co@school.test") == "absent"


@pytest.mark.db
async def test_reset_lets_the_new_password_in_and_keeps_the_old_one_out(directory_factory: Any,
                                                                        server: DovecotServer) -> None:
    directory = await directory_factory()
    await directory.create(spec("cuong.lv@school.test"), PASSWORD)
    await comes_to(server, "cuong.lv@school.test", PASSWORD, True)
    await directory.reset_password("cuong.lv@school.test", OTHER)  # a line of the same length, same second
    await comes_to(server, "cuong.lv@school.test", PASSWORD, False)
    assert await logs_in(server, "cuong.lv@school.test", OTHER)
    await directory.suspend("cuong.lv@school.test")
    await directory.reset_password("cuong.lv@school.test", PASSWORD)
    await comes_to(server, "cuong.lv@school.test", PASSWORD, True)  # a reset re-enables the account
    assert (await Account.get(address="cuong.lv@school.test")).state == "active"
    with pytest.raises(ProvisionError) as refused:
        await directory.reset_password("khong.co@school.test", OTHER)
    assert refused.value.permanent and OTHER not in refused.value.message


@pytest.mark.db
async def test_deleted_account_cannot_log_in_and_its_address_stays_taken(directory_factory: Any,
                                                                         server: DovecotServer) -> None:
    directory = await directory_factory()
    await directory.create(spec("dung.pt@school.test"), PASSWORD)
    await comes_to(server, "dung.pt@school.test", PASSWORD, True)
    assert await directory.delete("dung.pt@school.test") == "deleted"
    await comes_to(server, "dung.pt@school.test", PASSWORD, False)
    assert lines_of(server, "dung.pt@school.test") == []
    entry = await directory.lookup("dung.pt@school.test")
    assert entry is not None and entry.state == "deleted"
    with pytest.raises(AddressTaken):
        await directory.create(spec("dung.pt@school.test", key="8:someone-else"), OTHER)
    assert await directory.delete("dung.pt@school.test") == "absent"


@pytest.mark.db
async def test_lines_of_other_users_are_kept_as_they_are(directory_factory: Any, server: DovecotServer) -> None:
    server.accounts_path.write_text(FOREIGN)
    directory = await directory_factory()
    await directory.create(spec("em.hv@school.test"), PASSWORD)
    await directory.reset_password("em.hv@school.test", OTHER)
    await directory.create(spec("gia.nt@school.test"), PASSWORD)
    await directory.delete("gia.nt@school.test")
    assert server.accounts_path.read_text().startswith(FOREIGN)
    users = [e.user for e in map(parse_line, server.accounts_path.read_text().splitlines()) if e is not None]
    assert users == ["hieutruong@school.test", "em.hv@school.test"]
    assert oct(os.stat(server.accounts_path).st_mode & 0o777) == "0o640"  # Dovecot's group still reads it
    assert await logs_in(server, "em.hv@school.test", OTHER)


@pytest.mark.db
async def test_address_made_by_hand_in_the_file_is_taken(directory_factory: Any, server: DovecotServer) -> None:
    server.accounts_path.write_text(FOREIGN)
    directory = await directory_factory()
    entry = await directory.lookup("hieutruong@school.test")
    assert entry is not None and entry.state == "active" and not entry.owned_by("7:x", "")
    with pytest.raises(AddressTaken) as taken:
        await directory.create(spec("hieutruong@school.test"), PASSWORD)
    assert taken.value.address == "hieutruong@school.test"
    assert server.accounts_path.read_text() == FOREIGN
    assert not await Account.exists(address="hieutruong@school.test")


@pytest.mark.db
async def test_a_rerun_create_with_the_same_key_links_one_line(directory_factory: Any,
                                                               server: DovecotServer) -> None:
    directory = await directory_factory()
    assert await directory.create(spec("hoa.lt@school.test", key="9:p1"), PASSWORD) == "created"
    await directory.suspend("hoa.lt@school.test")
    assert await directory.create(spec("hoa.lt@school.test", key="9:p1"), OTHER) == "linked"
    assert len(lines_of(server, "hoa.lt@school.test")) == 1
    await comes_to(server, "hoa.lt@school.test", OTHER, True)
    with pytest.raises(AddressTaken):
        await directory.create(spec("hoa.lt@school.test", key="10:p2"), PASSWORD)


@pytest.mark.db
async def test_concurrent_creates_from_many_tasks_all_land(directory_factory: Any, server: DovecotServer) -> None:
    server.accounts_path.write_text(FOREIGN)
    directory = await directory_factory()
    addresses = [f"hs{i:03d}@school.test" for i in range(60)]
    results = await asyncio.gather(*(directory.create(spec(a), PASSWORD) for a in addresses))
    assert results == ["created"] * 60
    users = [line.split(":", 1)[0] for line in server.accounts_path.read_text().splitlines()
             if line and not line.startswith("#")]
    assert sorted(users) == sorted([*addresses, "hieutruong@school.test"])
    assert directory.passwd.rewrites < 60  # changes queued together share a rewrite
    for address in addresses[::10]:
        await comes_to(server, address, PASSWORD, True)


@pytest.mark.db
async def test_the_local_backend_keeps_its_passwd_file_in_step(directory_factory: Any,
                                                                server: DovecotServer) -> None:
    directory = await directory_factory(backend="local")
    assert directory.name == "local"
    await directory.create(spec("khanh.dq@school.test"), PASSWORD)
    assert (await Account.get(address="khanh.dq@school.test")).backend == "local"
    await comes_to(server, "khanh.dq@school.test", PASSWORD, True)
    await directory.suspend("khanh.dq@school.test")
    await comes_to(server, "khanh.dq@school.test", PASSWORD, False)


def test_an_unknown_scheme_is_a_config_error(settings_factory: Any, clock: Any) -> None:
    settings = settings_factory(provisioning={"dovecot": {"scheme": "MD5"}})
    with pytest.raises(ConfigError):
        make_provisioner(settings, clock, "dovecot")


_WRITER = """
import asyncio, sys
from pathlib import Path
from edudesk.directories.passwd_file import PasswdFile

async def main():
    passwd = PasswdFile(Path(sys.argv[1]))
    print("ready", flush=True)
    for i in range(200):
        await passwd.set_password(f"p2-{i}@school.test", "{PLAIN}x", "")

asyncio.run(main())
"""


async def test_two_processes_writing_at_once_lose_no_line(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text(FOREIGN)
    other = await asyncio.create_subprocess_exec(sys.executable, "-c", _WRITER, str(path),
                                                 cwd=Path(__file__).parents[2], stdout=asyncio.subprocess.PIPE)
    assert other.stdout is not None and await other.stdout.readline() == b"ready\n"
    passwd = PasswdFile(path)
    for i in range(200):  # one rewrite each, interleaved with the other process's
        await passwd.set_password(f"p1-{i}@school.test", "{PLAIN}x", "")
    assert await asyncio.wait_for(other.wait(), 60) == 0
    users = {e.user for e in map(parse_line, path.read_text().splitlines()) if e is not None}
    assert len(users) == 401 and path.read_text().startswith(FOREIGN)


async def test_every_version_differs_from_the_last_for_dovecot_in_size_or_mtime_second(tmp_path: Path) -> None:
    # Dovecot re-reads a passwd-file only when its size or whole-second mtime changed since it last read it.
    passwd = PasswdFile(tmp_path / "users")
    seen = set()

    def stamp() -> None:
        st = os.stat(tmp_path / "users")
        seen.add((int(st.st_mtime), st.st_size))

    for i in range(30):  # resets, suspends and re-enables: lines of the same length, most in the same second
        await passwd.set_password("a@school.test", "{PLAIN}" + "xy"[i % 2] * 8, "/h/a")
        stamp()
        if i % 3 == 0:
            await passwd.suspend("a@school.test")
            stamp()
    assert len(seen) == passwd.rewrites
    entry = await passwd.entry("a@school.test")
    assert entry is not None and entry.password == "{PLAIN}yyyyyyyy" and not entry.locked


async def test_two_thousand_changes_are_folded_into_few_rewrites(tmp_path: Path) -> None:
    passwd = PasswdFile(tmp_path / "users")
    await asyncio.gather(*(passwd.set_password(f"u{i}@school.test", "{PLAIN}x", f"/h/{i}") for i in range(2000)))
    assert len((tmp_path / "users").read_text().splitlines()) == 2000
    assert passwd.rewrites <= 10
    assert not list(tmp_path.glob(".users.*.tmp"))  # no temp file left behind
