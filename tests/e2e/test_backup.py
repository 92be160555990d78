"""`edudesk backup` while requests keep coming in, and `edudesk restore` into an empty folder: the real command
line in subprocesses, a real SQLite file written by an App meanwhile, a real PostgreSQL with pg_dump/pg_restore."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import sqlite3
import stat
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edudesk.core.accounts.models import PendingSecret
from edudesk.core.config import load_settings
from edudesk.core.requests.models import Request
from edudesk.core.secrets import load_secret_box
from tests.conftest import PG_URL, make_settings, wait_until
from tests.mails import student_form_mail

ROOT = Path(__file__).resolve().parents[2]
PASSPHRASE = "cụm mật khẩu sao lưu 2024"
PASSWORD = "Mật-khẩu-9xQ"
sqlite_only = pytest.mark.skipif(bool(PG_URL), reason="the SQLite online backup; PostgreSQL has its own test")


def env(**extra: str) -> dict[str, str]:
    """The environment of a command: no inherited key, database URL or passphrase; PYTHONPATH to the checkout."""
    base = {k: v for k, v in os.environ.items()
            if k not in ("EDUDESK_SECRET_KEY", "EDUDESK_DATABASE_URL", "EDUDESK_BACKUP_PASSPHRASE")
            and not k.startswith("EDUDESK_GENERAL__")}
    return {**base, "PYTHONPATH": str(ROOT), **extra}


async def edudesk(*args: str, cwd: Path = ROOT, **extra: str) -> tuple[int, str, str]:
    """Run the command line as a user would, without blocking the loop (an App keeps writing meanwhile)."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "edudesk", *args,
                                                cwd=cwd, env=env(**extra), stdout=subprocess.PIPE,
                                                stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def live_config(folder: Path, database: str = 'url = "sqlite://{data_dir}/edudesk.sqlite3"') -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.toml"
    path.write_text(f'[general]\ndata_dir = "{folder / "data"}"\n[database]\n{database}\n'
                    'url_env = "EDUDESK_TEST_UNSET_DATABASE_URL"\n[smtpd]\nenabled = false\n[web]\nenabled = false\n'
                    "[intake]\nparser_processes = 1\n", encoding="utf-8")
    return path


async def receive(app: Any, i: int) -> None:
    """One registration mail through the ledger and intake: one more request."""
    raw = student_form_mail(name="Nguyễn Văn An", sid=f"2024{i:05d}", message_id=f"<backup-{i}@gmail.com>")
    stored = await app.ledger.store(raw, source="smtp")
    await app.pipeline.process(stored.mail_id)


async def live_app(app_factory: Callable[..., Any], config: Path, mails: int) -> Any:
    app = await app_factory(load_settings(config, environ={}), inline_analysis=True)
    for i in range(mails):
        await receive(app, i)
    await PendingSecret.create(key="pw:backup-test", request_id=0, sealed=app.box.seal(PASSWORD),
                               created_at=app.clock.now())
    return app


@sqlite_only
async def test_backup_while_requests_arrive_restores_every_request_and_the_sealed_password(
        app_factory: Callable[..., Any], tmp_path: Path) -> None:
    config = live_config(tmp_path / "live")
    app = await live_app(app_factory, config, 15)
    stop, written = asyncio.Event(), [15]

    async def keep_writing() -> None:
        while not stop.is_set():
            await receive(app, written[0])
            written[0] += 1

    async def back_up() -> tuple[int, str, str]:
        try:
            await wait_until(lambda: written[0] >= 18)
            present.update(await Request.all().values_list("id", flat=True))
            at_start = written[0]
            done = await edudesk("--config", str(config), "backup", "--out", str(out),
                                 EDUDESK_BACKUP_PASSPHRASE=PASSPHRASE)
            assert written[0] > at_start  # the service kept writing while the backup ran
            return done
        finally:
            stop.set()

    present: set[int] = set()
    out = tmp_path / "sao-luu.tar.gz"
    async with asyncio.TaskGroup() as tg:
        tg.create_task(keep_writing())
        backup = tg.create_task(back_up())
    rc, stdout, stderr = backup.result()
    assert rc == 0, stderr
    assert "Đã sao lưu" in stdout and PASSPHRASE not in stdout + stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp file left behind

    empty = tmp_path / "may-moi"
    empty.mkdir()
    rc, stdout, stderr = await edudesk("restore", str(out), cwd=empty, EDUDESK_BACKUP_PASSPHRASE=PASSPHRASE)
    assert rc == 0, stderr
    assert "Đã khôi phục" in stdout and "Đã ghi khoá bí mật" in stdout
    restored = load_settings(empty / "config.toml", environ={})
    assert restored.data_dir == empty / "data" and restored.intake.parser_processes == 1  # the backup's config
    db = sqlite3.connect(restored.database_url.removeprefix("sqlite://"))
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        ids = {r[0] for r in db.execute("SELECT id FROM request")}
        [sealed] = [r[0] for r in db.execute("SELECT sealed FROM pending_secret WHERE key = 'pw:backup-test'")]
    finally:
        db.close()
    assert present <= ids
    assert load_secret_box(restored).open(sealed) == PASSWORD
    assert stat.S_IMODE((empty / "data" / "secret.key").stat().st_mode) == 0o600


@sqlite_only
async def test_restore_refuses_a_wrong_passphrase_a_damaged_archive_and_a_database_with_data(
        app_factory: Callable[..., Any], tmp_path: Path) -> None:
    config = live_config(tmp_path / "live")
    await live_app(app_factory, config, 3)
    out, refused = tmp_path / "sao-luu.tar", tmp_path / "khong-duoc.tar"
    (rc, _, stderr), (ok, _, why) = await asyncio.gather(
        edudesk("--config", str(config), "backup", "--out", str(refused)),
        edudesk("--config", str(config), "backup", "--out", str(out), EDUDESK_BACKUP_PASSPHRASE=PASSPHRASE))
    assert (rc, stderr.strip().count("\n")) == (1, 0) and "EDUDESK_BACKUP_PASSPHRASE" in stderr
    assert not refused.exists()
    assert ok == 0, why

    tampered = tmp_path / "hong.tar"
    with tarfile.open(out) as src, tarfile.open(tampered, "w") as dst:
        for member in src.getmembers():
            data = bytearray(src.extractfile(member).read())  # type: ignore[union-attr]
            if member.name == "database.sqlite3":
                data[len(data) // 2] ^= 0xFF
            dst.addfile(member, io.BytesIO(bytes(data)))
    # Altered with care: the database changed AND its hash in the manifest updated; only the signature tells.
    forged = tmp_path / "gia.tar"
    with tarfile.open(out) as src, tarfile.open(forged, "w") as dst:
        members = {m.name: (m, src.extractfile(m).read()) for m in src.getmembers()}  # type: ignore[union-attr]
        database = bytearray(members["database.sqlite3"][1])
        database[len(database) // 2] ^= 0xFF
        manifest = json.loads(members["manifest.json"][1])
        manifest["members"]["database.sqlite3"] = hashlib.sha256(bytes(database)).hexdigest()
        changed = {"database.sqlite3": bytes(database), "manifest.json": json.dumps(manifest).encode()}
        for name, (member, data) in members.items():
            member.size = len(changed.get(name, data))
            dst.addfile(member, io.BytesIO(changed.get(name, data)))
    unsigned = tmp_path / "khong-ky.tar"  # the same, with the signature left out
    with tarfile.open(forged) as src, tarfile.open(unsigned, "w") as dst:
        for member in src.getmembers():
            if member.name != "manifest.sig":
                dst.addfile(member, src.extractfile(member))
    not_tar = tmp_path / "khong-phai.tar"
    not_tar.write_bytes(b"not a tar at all" * 100)
    cases = {  # each refusal in a folder of its own, all at once
        "wrong": (out, {"EDUDESK_BACKUP_PASSPHRASE": "sai mật khẩu"}),
        "wrong_en": (out, {"EDUDESK_BACKUP_PASSPHRASE": "wrong", "EDUDESK_GENERAL__LANGUAGE": "en"}),
        "tampered": (tampered, {"EDUDESK_BACKUP_PASSPHRASE": PASSPHRASE}),
        "forged": (forged, {"EDUDESK_BACKUP_PASSPHRASE": PASSPHRASE}),
        "unsigned": (unsigned, {"EDUDESK_BACKUP_PASSPHRASE": PASSPHRASE}),
        "signed_no_passphrase": (out, {}),
        "not_tar": (not_tar, {}),
        "missing": (tmp_path / "khong-co.tar", {}),
    }
    for case in cases:
        (tmp_path / case).mkdir()
    results = dict(zip(cases, await asyncio.gather(*(
        edudesk("restore", str(file), cwd=tmp_path / case, **extra) for case, (file, extra) in cases.items())),
        strict=True))
    assert {case: r[0] for case, r in results.items()} == dict.fromkeys(cases, 1)
    assert results["wrong"][2].strip() == ("edudesk: Sai cụm mật khẩu sao lưu (biến EDUDESK_BACKUP_PASSPHRASE): "
                                           "không mở được khoá bí mật.")
    assert "Wrong backup passphrase" in results["wrong_en"][2]
    assert "bị hỏng" in results["tampered"][2] and "database.sqlite3" in results["tampered"][2]
    assert "Chữ ký của bản sao lưu không khớp" in results["forged"][2]
    assert "không có chữ ký" in results["unsigned"][2] and "--unsigned" in results["unsigned"][2]
    assert "EDUDESK_BACKUP_PASSPHRASE" in results["signed_no_passphrase"][2]
    assert "không phải bản sao lưu" in results["not_tar"][2]
    assert "Không tìm thấy tệp sao lưu" in results["missing"][2]
    for case, (_, _, stderr) in results.items():
        assert stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
        assert list((tmp_path / case).iterdir()) == []  # a refused restore leaves nothing behind

    target = tmp_path / "dich"
    target.mkdir()
    rc, _, stderr = await edudesk("restore", str(out), cwd=target, EDUDESK_BACKUP_PASSPHRASE=PASSPHRASE)
    assert rc == 0, stderr
    rc, _, stderr = await edudesk("restore", str(out), cwd=target, EDUDESK_BACKUP_PASSPHRASE=PASSPHRASE)
    assert rc == 1 and "đã có dữ liệu" in stderr and "--force" in stderr
    rc, stdout, stderr = await edudesk("restore", str(out), "--force", cwd=target,
                                       EDUDESK_BACKUP_PASSPHRASE=PASSPHRASE)
    assert rc == 0 and "Đã khôi phục" in stdout, stderr

    bare = tmp_path / "khong-khoa.tar"
    rc, _, stderr = await edudesk("--config", str(config), "backup", "--out", str(bare), "--without-key")
    assert rc == 0 and "không mở được" in stderr
    with tarfile.open(bare) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        assert "manifest.sig" not in tar.getnames()  # no passphrase was set: nothing to sign with
    assert set(manifest["members"]) == {"database.sqlite3", "config.toml"} and manifest["dialect"] == "sqlite"
    assert manifest["tables"]["request"] == 3
    assert "--unsigned" in stderr  # the backup said so when it was made
    again = tmp_path / "khong-khoa-dich"
    again.mkdir()
    rc, _, stderr = await edudesk("restore", str(bare), cwd=again)
    assert rc == 1 and "--unsigned" in stderr and list(again.iterdir()) == []
    rc, stdout, stderr = await edudesk("restore", str(bare), "--unsigned", cwd=again)
    assert rc == 0 and "Đã khôi phục" in stdout, stderr

    signed = tmp_path / "khong-khoa-co-ky.tar"  # no key, but a passphrase: signed all the same
    rc, _, stderr = await edudesk("--config", str(config), "backup", "--out", str(signed), "--without-key",
                                  EDUDESK_BACKUP_PASSPHRASE=PASSPHRASE)
    assert rc == 0, stderr
    (tmp_path / "ky-dich").mkdir()
    rc, _, stderr = await edudesk("restore", str(signed), cwd=tmp_path / "ky-dich")
    assert rc == 1 and "Bản sao lưu có chữ ký" in stderr and "EDUDESK_BACKUP_PASSPHRASE" in stderr
    rc, stdout, stderr = await edudesk("restore", str(signed), cwd=tmp_path / "ky-dich",
                                       EDUDESK_BACKUP_PASSPHRASE=PASSPHRASE)
    assert rc == 0 and "Đã khôi phục" in stdout, stderr


@pytest.mark.db
@pytest.mark.skipif(not PG_URL, reason="needs EDUDESK_TEST_DATABASE_URL (PostgreSQL)")
async def test_postgres_backup_restores_into_another_database_with_equal_counts(
        app_factory: Callable[..., Any], tmp_path: Path) -> None:
    import asyncpg

    config = live_config(tmp_path / "live", f'url = "{PG_URL}"')
    app = await app_factory(make_settings(tmp_path / "live", database={"url": PG_URL}), inline_analysis=True)
    for i in range(5):
        await receive(app, i)
    await PendingSecret.create(key="pw:backup-test", request_id=0, sealed=app.box.seal(PASSWORD),
                               created_at=app.clock.now())
    out = tmp_path / "pg.tar"
    rc, stdout, stderr = await edudesk("--config", str(config), "backup", "--out", str(out),
                                       EDUDESK_BACKUP_PASSPHRASE=PASSPHRASE)
    assert rc == 0, stderr

    server = PG_URL.replace("postgres://", "postgresql://", 1).rsplit("/", 1)[0]
    name = f"edudesk_restore_{os.getpid()}"
    admin = await asyncpg.connect(f"{server}/postgres")
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        target = live_config(tmp_path / "target", f'url = "{server}/{name}"')
        rc, stdout, stderr = await edudesk("--config", str(target), "restore", str(out),
                                           EDUDESK_BACKUP_PASSPHRASE=PASSPHRASE)
        assert rc == 0, stderr
        assert "Đã khôi phục" in stdout and ":" + "@" not in stdout
        counts = []
        for url in (PG_URL.replace("postgres://", "postgresql://", 1), f"{server}/{name}"):
            conn = await asyncpg.connect(url)
            try:
                tables = [r[0] for r in await conn.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
                counts.append({t: await conn.fetchval(f'SELECT count(*) FROM "{t}"') for t in tables})
                if url.endswith(name):
                    sealed = await conn.fetchval("SELECT sealed FROM pending_secret WHERE key = 'pw:backup-test'")
            finally:
                await conn.close()
        assert counts[0] == counts[1] and counts[0]["request"] == 5
        restored = load_settings(target, environ={})
        assert load_secret_box(restored).open(sealed) == PASSWORD
        rc, _, stderr = await edudesk("--config", str(target), "restore", str(out),
                                      EDUDESK_BACKUP_PASSPHRASE=PASSPHRASE)
        assert rc == 1 and "đã có dữ liệu" in stderr
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
