"""`edudesk backup --out FILE` and `edudesk restore FILE`: one .tar (or .tar.gz) holding a consistent copy of the
database, the config it ran with and the secret key sealed under a passphrase, with a manifest of hashes."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edudesk import __version__
from edudesk.cli.backup_db import (
    PG_MEMBER,
    SQLITE_MEMBER,
    BackupError,
    Dump,
    dialect_of,
    dump,
    put_back,
    rows_in,
    shown_url,
)
from edudesk.cli.backup_key import WrongPassphrase, manifest_signed, seal_key, sign_manifest, unseal_key
from edudesk.core.config import Settings, load_settings
from edudesk.core.db import migrate_database
from edudesk.core.errors import ConfigError
from edudesk.core.words import Words, words

FORMAT, FORMAT_VERSION = "edudesk-backup", 1
MANIFEST, SIGNATURE, CONFIG, KEY = "manifest.json", "manifest.sig", "config.toml", "secret_key.sealed"
MEMBERS = {SQLITE_MEMBER, PG_MEMBER, CONFIG, KEY}


def add_parser(sub: Any) -> None:
    """The `backup` and `restore` commands."""
    bak = sub.add_parser("backup", help="a consistent copy of the database, config and sealed secret key "
                                        "(passphrase from EDUDESK_BACKUP_PASSPHRASE), safe while edudesk runs")
    bak.add_argument("--out", type=Path, required=True, help="archive to write (.tar, or .tar.gz to compress)")
    bak.add_argument("--without-key", action="store_true",
                     help="leave the secret key out (sealed passwords will not open after a restore)")
    bak.set_defaults(func=cmd_backup)
    res = sub.add_parser("restore", help="restore a backup (then migrates the database)")
    res.add_argument("file", type=Path)
    res.add_argument("--data-dir", type=Path, help="data folder to restore into (default: [general].data_dir)")
    res.add_argument("--force", action="store_true", help="replace a database that has data, and its secret key")
    res.add_argument("--unsigned", action="store_true",
                     help="accept an archive whose manifest carries no signature (made without a passphrase)")
    res.set_defaults(func=cmd_restore)


def _config_path(args: argparse.Namespace) -> Path | None:
    """The config file the settings came from, found as `main.load` finds it."""
    if args.config:
        return Path(args.config)
    return Path("config.toml") if Path("config.toml").exists() else None


async def cmd_backup(settings: Settings, args: argparse.Namespace) -> int:
    """Write the archive; one line and exit 1 on a mistake."""
    w = words(settings.general.language)
    try:
        done = await make_backup(settings, args.out, config=_config_path(args), without_key=args.without_key, w=w)
    except BackupError as exc:
        print(f"edudesk: {exc.message}", file=sys.stderr)
        return 1
    print(done)
    return 0


async def cmd_restore(settings: Settings, args: argparse.Namespace) -> int:
    """Restore an archive; one line and exit 1 on a mistake."""
    w = words(settings.general.language)
    try:
        lines = await restore(settings, args.file, data_dir=args.data_dir, config=_config_path(args),
                              force=args.force, w=w, unsigned=args.unsigned)
    except BackupError as exc:
        print(f"edudesk: {exc.message}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


def _current_key(settings: Settings) -> bytes | None:
    """The secret key as `load_secret_box` reads it: the environment variable, else `<data_dir>/secret.key`."""
    key = settings.secret(settings.general.secret_key_env)
    if key:
        return key.encode()
    path = settings.data_dir / "secret.key"
    return path.read_bytes().strip() if path.is_file() else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


async def make_backup(settings: Settings, out: Path, *, config: Path | None, without_key: bool, w: Words) -> str:
    """Write the archive to `out` (whole or not at all, 0600); the line to print."""
    key = None if without_key else _current_key(settings)
    env = settings.general.backup_passphrase_env
    passphrase = settings.secret(env)
    if key is not None and not passphrase:
        raise BackupError(w("cli.backup.no_passphrase", env=env))
    if without_key:
        print(f"edudesk: {w('cli.backup.without_key')}", file=sys.stderr)
    if not passphrase:
        print(f"edudesk: {w('cli.backup.unsigned', env=env)}", file=sys.stderr)
    out = out.resolve()
    try:
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=".edudesk-backup-") as tmp:
            staging = Path(tmp)
            copy = await dump(settings.database_url, staging, w)
            members = {copy.member: copy.path}
            if config is not None:
                members[CONFIG] = staging / CONFIG
                shutil.copyfile(config, members[CONFIG])
            if key is not None:
                members[KEY] = staging / KEY
                members[KEY].write_bytes(seal_key(key, passphrase))
            manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "edudesk_version": __version__,
                        "created_at": datetime.now(UTC).isoformat(timespec="seconds"), "dialect": copy.dialect,
                        "tables": copy.tables, "members": {name: _sha256(p) for name, p in members.items()}}
            _write_archive(out, manifest, members, passphrase)
    except OSError as exc:
        raise BackupError(w("cli.backup.cannot_write", path=out, reason=exc.strerror or exc)) from None
    rows = sum(copy.tables.values())
    return w("cli.backup.done", tables=len(copy.tables), rows=rows, path=out,
             size=f"{out.stat().st_size / 1e6:.1f} MB")


def _write_archive(out: Path, manifest: dict[str, Any], members: dict[str, Path], passphrase: str | None) -> None:
    """A temp file beside `out`, renamed over it once complete and on disk: a crash leaves no half archive.
    With a passphrase the manifest is signed (`manifest.sig`)."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    mode = "w:gz" if out.name.endswith((".gz", ".tgz")) else "w"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            with tarfile.open(fileobj=f, mode=mode) as tar:  # type: ignore[call-overload]
                listing = members[next(iter(members))].with_name(MANIFEST)  # first: a reader finds it at once
                text = json.dumps(manifest, ensure_ascii=False, indent=2).encode()
                listing.write_bytes(text)
                tar.add(listing, arcname=MANIFEST)
                if passphrase:
                    signature = listing.with_name(SIGNATURE)
                    signature.write_bytes(sign_manifest(text, passphrase))
                    tar.add(signature, arcname=SIGNATURE)
                for name, path in members.items():
                    tar.add(path, arcname=name)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class Archive:
    """What `_read_archive` found: the manifest (parsed and as written), its signature, the members."""

    def __init__(self, manifest: dict[str, Any], text: bytes, signature: bytes | None, found: dict[str, Path]):
        self.manifest, self.text, self.signature, self.found = manifest, text, signature, found


def _read_archive(file: Path, staging: Path, w: Words) -> Archive:
    """The manifest, its signature and the members written to `staging`, each checked against its hash."""
    if not file.is_file():
        raise BackupError(w("cli.restore.missing", path=file))
    try:
        tar = tarfile.open(file)
    except (tarfile.TarError, OSError, EOFError, zlib.error):
        raise BackupError(w("cli.restore.not_backup", path=file)) from None
    with tar:
        try:
            text = tar.extractfile(MANIFEST).read()  # type: ignore[union-attr]
            manifest = json.loads(text)
            assert manifest["format"] == FORMAT and isinstance(manifest["members"], dict)
            assert set(manifest["members"]) <= MEMBERS and isinstance(manifest["tables"], dict)
        except (KeyError, AttributeError, TypeError, ValueError, AssertionError, tarfile.TarError):
            raise BackupError(w("cli.restore.not_backup", path=file)) from None
        if manifest.get("format_version") != FORMAT_VERSION:
            raise BackupError(w("cli.restore.newer_format", version=manifest.get("format_version")))
        try:
            source = tar.extractfile(SIGNATURE)
            signature = source.read() if source is not None else None
        except KeyError:
            signature = None
        except (tarfile.TarError, EOFError, zlib.error):
            raise BackupError(w("cli.restore.damaged", member=SIGNATURE)) from None
        found: dict[str, Path] = {}
        for name, expected in manifest["members"].items():
            target = staging / name
            digest = hashlib.sha256()
            try:
                source = tar.extractfile(name)
                assert source is not None
                with source, target.open("wb") as f:
                    for chunk in iter(lambda: source.read(1 << 20), b""):  # noqa: B023 (used at once)
                        digest.update(chunk)
                        f.write(chunk)
            except (KeyError, AssertionError, tarfile.TarError, EOFError, zlib.error):
                raise BackupError(w("cli.restore.damaged", member=name)) from None
            if digest.hexdigest() != expected:
                raise BackupError(w("cli.restore.damaged", member=name))
            found[name] = target
    return Archive(manifest, text, signature, found)


def with_data_dir(text: str, value: str) -> str:
    """The config text with `[general] data_dir` set to `value` (the line replaced, or added)."""
    line = f"data_dir = {json.dumps(value)}  # set by edudesk restore"
    lines, section = text.splitlines(), ""
    for i, raw in enumerate(lines):
        bare = raw.split("#", 1)[0].strip()
        if bare.startswith("["):
            section = bare
        elif section == "[general]" and re.match(r"data_dir\s*=", bare):
            lines[i] = line
            break
    else:
        at = next((i for i, raw in enumerate(lines) if raw.split("#", 1)[0].strip() == "[general]"), None)
        if at is None:
            lines[0:0] = ["[general]", line, ""]
        else:
            lines.insert(at + 1, line)
    return "\n".join(lines) + "\n"


def _restored_config(text: str, path: Path, data_dir: Path, w: Words) -> Settings:
    """Settings read from the backup's config as it will be written at `path` (data_dir pointing at the restore);
    left at `<path>.restore` until the restore succeeds."""
    try:
        shown = data_dir.relative_to(path.parent.resolve()).as_posix() or "."
    except ValueError:
        shown = str(data_dir)
    pending = path.with_name(path.name + ".restore")
    pending.write_text(with_data_dir(text, shown), encoding="utf-8")
    try:
        return load_settings(pending, environ=os.environ)
    except ConfigError as exc:
        pending.unlink()
        raise BackupError(w("cli.restore.config_refused", reason=exc.message)) from None


async def restore(settings: Settings, file: Path, *, data_dir: Path | None, config: Path | None, force: bool,
                  w: Words, unsigned: bool = False) -> list[str]:
    """Check the archive, then restore database, config and key, then migrate; the lines to print."""
    if not file.is_file():
        raise BackupError(w("cli.restore.missing", path=file))
    data_dir = (data_dir or settings.data_dir).resolve()
    made = not data_dir.exists()
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = Path(tempfile.mkdtemp(dir=data_dir, prefix=".restore-"))
    pending: Path | None = None
    try:
        archive = _read_archive(file, staging, w)
        manifest, found = archive.manifest, archive.found
        key = _unseal(settings, found.get(KEY), w)  # first: a wrong passphrase is named as such
        _check_signature(settings, archive, unsigned, w)
        target = settings.model_copy(update={"general": settings.general.model_copy(
            update={"data_dir": str(data_dir)})})
        lines: list[str] = []
        config_out = config if config is not None else data_dir.parent / "config.toml"
        if config is None and not config_out.exists():  # a new place: the backup's config, or a minimal one
            text = found[CONFIG].read_text(encoding="utf-8") if CONFIG in found else ""
            target = _restored_config(text, config_out, data_dir, w)
            pending = config_out.with_name(config_out.name + ".restore")
        url = target.database_url
        if dialect_of(url) != manifest["dialect"]:
            raise BackupError(w("cli.restore.dialect", backup=manifest["dialect"], target=shown_url(url)))
        rows = await rows_in(url, w)
        if rows and not force:
            raise BackupError(w("cli.restore.not_empty", rows=rows, url=shown_url(url)))
        key_file = target.data_dir / "secret.key"
        if key is not None and key_file.is_file() and key_file.read_bytes().strip() != key and not force:
            raise BackupError(w("cli.restore.key_differs", path=key_file))
        member = PG_MEMBER if manifest["dialect"] == "postgres" else SQLITE_MEMBER
        if member not in found:
            raise BackupError(w("cli.restore.damaged", member=member))
        counts = await put_back(Dump(member, found[member], manifest["dialect"], manifest["tables"]), url, w)
        wrong = [t for t, n in manifest["tables"].items() if counts.get(t) != n]
        if wrong:
            raise BackupError(w("cli.restore.counts", table=wrong[0], got=counts.get(wrong[0]),
                                expected=manifest["tables"][wrong[0]]))
        lines.append(w("cli.restore.done", tables=len(counts), rows=sum(counts.values()), target=shown_url(url),
                       created=manifest.get("created_at", "?")))
        wrote = pending is not None
        if pending is not None:
            os.replace(pending, config_out)
            pending = None
            lines.append(w("cli.restore.config_written", path=config_out))
        lines += _place_key(target, key, key_file, w)
        await migrate_database(target)
        if not wrote and target.data_dir != settings.data_dir:
            lines.append(w("cli.restore.next_data_dir", config=config_out, data_dir=target.data_dir))
        else:
            lines.append(w("cli.restore.next", config=config_out))
        return lines
    except BaseException:
        if made and not any(p for p in data_dir.iterdir() if p != staging):
            shutil.rmtree(data_dir, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if pending is not None:
            pending.unlink(missing_ok=True)


def _check_signature(settings: Settings, archive: Archive, unsigned: bool, w: Words) -> None:
    """The manifest's signature must match under the passphrase; an unsigned archive only with --unsigned."""
    env = settings.general.backup_passphrase_env
    if archive.signature is None:
        if not unsigned:
            raise BackupError(w("cli.restore.unsigned", env=env))
        return
    passphrase = settings.secret(env)
    if not passphrase:
        raise BackupError(w("cli.restore.signed_no_passphrase", env=env))
    try:
        good = manifest_signed(archive.text, archive.signature, passphrase)
    except ValueError:
        raise BackupError(w("cli.restore.damaged", member=SIGNATURE)) from None
    if not good:
        raise BackupError(w("cli.restore.bad_signature", env=env))


def _unseal(settings: Settings, sealed: Path | None, w: Words) -> bytes | None:
    """The backup's secret key, opened with the passphrase (None when the backup has none)."""
    if sealed is None:
        return None
    env = settings.general.backup_passphrase_env
    passphrase = settings.secret(env)
    if not passphrase:
        raise BackupError(w("cli.restore.no_passphrase", env=env))
    try:
        return unseal_key(sealed.read_bytes(), passphrase)
    except WrongPassphrase:
        raise BackupError(w("cli.restore.wrong_passphrase", env=env)) from None
    except ValueError:
        raise BackupError(w("cli.restore.damaged", member=KEY)) from None


def _place_key(target: Settings, key: bytes | None, path: Path, w: Words) -> list[str]:
    """Write the key where `load_secret_box` reads it; say when an environment variable would hide it."""
    if key is None:
        return [w("cli.restore.no_key")]
    tmp = path.with_name(f".{path.name}.restore")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    lines = [w("cli.restore.key_written", path=path)]
    env = target.general.secret_key_env
    current = target.secret(env)
    if current and current.encode() != key:
        lines.append(w("cli.restore.key_env", env=env, path=path))
    return lines
