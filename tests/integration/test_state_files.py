"""State files are private whatever the umask: data folder 0700; database, WAL, mails and keys 0600.

The service runs for real (SMTP listener, job worker, maildir outbox, SQLite in WAL mode); the command
line runs in a real subprocess started with a permissive umask.
"""

from __future__ import annotations

import asyncio
import os
import smtplib
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edudesk.core.requests.models import OutgoingMail
from tests.conftest import wait_until
from tests.mails import student_form_mail

pytestmark = pytest.mark.db
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def umask() -> Iterator[Any]:
    """Set a umask for the test; the previous one comes back afterwards."""
    previous = os.umask(0o022)

    def set_to(mask: int) -> None:
        os.umask(mask)

    yield set_to
    os.umask(previous)


def loose_modes(data: Path) -> dict[str, str]:
    """Every path under `data` (and `data` itself) that another user could read or enter, with its mode."""
    loose: dict[str, str] = {}
    for path in (data, *data.rglob("*")):
        mode = stat.S_IMODE(path.lstat().st_mode)
        wanted = 0o700 if path.is_dir() else 0o600
        if mode & ~wanted:
            loose[str(path.relative_to(data.parent))] = oct(mode)
    return loose


def _send(port: int, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail("an.nv2003@gmail.com", ["office-bknic@hust.edu.vn"], raw)


@pytest.mark.parametrize("mask", [0o022, 0o000])
async def test_the_service_keeps_its_state_files_private_whatever_the_umask(
        app_factory: Any, settings_factory: Any, tmp_path: Path, umask: Any, mask: int) -> None:
    umask(mask)
    data = tmp_path / "data"
    # What an older version (or a copy made with another umask) left behind.
    (data / "outbox" / "new").mkdir(parents=True, mode=0o755)
    old_mail = data / "outbox" / "new" / "old-result.eml"
    old_mail.write_bytes(b"Subject: old\r\n\r\nhttp://x/p/token\r\n")
    old_mail.chmod(0o644)
    (data / "demo.p12").write_bytes(b"\x30\x82")
    (data / "demo.p12").chmod(0o644)
    data.chmod(0o755)

    app = await app_factory(settings_factory(smtpd={"enabled": True, "port": 0}), inline_analysis=True)
    assert app.smtp is not None
    await app.smtp.start()
    await asyncio.to_thread(_send, app.smtp.port, student_form_mail(message_id="<form-perm@gmail.com>"))

    async def acknowledged() -> bool:
        await app.worker.drain()
        return await OutgoingMail.filter(state="sent").exists()

    await wait_until(acknowledged)
    (data / "after-start.key").write_bytes(b"made by the running service")  # the umask holds for later files
    db = Path(app.settings.database_url.removeprefix("sqlite://"))
    if app.settings.database_url.startswith("sqlite://"):
        assert Path(f"{db}-wal").exists() and db.is_relative_to(data)
    mails = [p for p in (data / "outbox").rglob("*") if p.is_file()]
    assert len(mails) >= 2 and (data / "secret.key").exists()
    assert loose_modes(data) == {}
    assert stat.S_IMODE(data.stat().st_mode) == 0o700


def test_the_command_line_makes_private_files_under_a_permissive_umask(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[general]\ndata_dir = "{tmp_path / "data"}"\n', encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "edudesk", "--config", str(config),
                           "staff", "add", "--name", "Lê Văn Phòng", "--role", "office"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, preexec_fn=lambda: os.umask(0))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "data" / "edudesk.sqlite3").exists()
    assert loose_modes(tmp_path / "data") == {}


def test_a_passwd_file_dovecot_reads_keeps_its_mode(tmp_path: Path, umask: Any) -> None:
    """Dovecot's auth process reads the passwd-file as another user: its mode is not ours to tighten."""
    from edudesk.core.statefiles import protect_state_files
    from tests.conftest import make_settings

    users = tmp_path / "data" / "dovecot" / "users"  # the old default place; the local back end is in use
    users.parent.mkdir(parents=True)
    users.write_text("")
    users.chmod(0o640)
    other = tmp_path / "data" / "outbox.tmp"
    other.write_text("")
    other.chmod(0o644)
    protect_state_files(make_settings(tmp_path, provisioning={"dovecot": {"passwd_file": str(users)}}))
    assert stat.S_IMODE(users.stat().st_mode) == 0o640
    assert stat.S_IMODE(other.stat().st_mode) == 0o600


def test_dovecot_in_use_refuses_to_start_where_it_could_not_read_its_file(tmp_path: Path, umask: Any) -> None:
    """Inside the private data folder Dovecot cannot read it; an upgrade must not start an empty new one."""
    from edudesk.core.errors import ConfigError
    from edudesk.core.statefiles import protect_state_files
    from tests.conftest import make_settings

    inside = tmp_path / "data" / "dovecot" / "users"
    settings = make_settings(tmp_path, provisioning={"backend": "dovecot", "dovecot": {"passwd_file": str(inside)}})
    with pytest.raises(ConfigError, match="Dovecot không đọc được"):
        protect_state_files(settings)
    inside.parent.mkdir(parents=True)
    inside.write_text("an.nv@hust.edu.vn:{SHA512-CRYPT}x::::::\n")
    moved = tmp_path / "dovecot" / "users"
    settings = make_settings(tmp_path, provisioning={"populations": {"staff": "dovecot"},
                                                     "dovecot": {"passwd_file": str(moved)}})
    with pytest.raises(ConfigError, match="chỗ cũ"):
        protect_state_files(settings)
    moved.parent.mkdir()
    inside.rename(moved)
    protect_state_files(settings)  # moved as told: it starts
