"""State files are the office's alone: the data folder 0700, the database, mails and keys 0600, whatever the umask.

The process umask is set to 077 at start (so files made later — WAL, outbox mails, keys, signed PDFs — are
private too), and what an older version or another umask left behind is tightened once at start.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from edudesk.core.config import Settings
from edudesk.core.errors import ConfigError

log = logging.getLogger(__name__)
PRIVATE_UMASK = 0o077
DIR_MODE = 0o700
FILE_MODE = 0o600


def sqlite_path(database_url: str) -> Path | None:
    """The SQLite database file of a URL, or None for PostgreSQL and in-memory databases."""
    if not database_url.startswith("sqlite://") or database_url == "sqlite://:memory:":
        return None
    return Path(database_url.removeprefix("sqlite://"))


def _tighten(path: Path, mode: int) -> None:
    try:
        current = stat.S_IMODE(path.lstat().st_mode)
        if current & ~mode:
            os.chmod(path, current & mode, follow_symlinks=False)
    except (FileNotFoundError, NotImplementedError):
        pass  # gone meanwhile, or a symlink on a system without lchmod: neither is ours to fix
    except OSError as exc:
        log.warning("cannot make %s private: %s", path, exc)


OLD_DOVECOT_FILE = "{data_dir}/dovecot/users"  # the default before the data folder became private


def dovecot_in_use(settings: Settings) -> list[Path]:
    """The passwd-files Dovecot reads for the back ends in use (the local one's is optional)."""
    prov = settings.provisioning
    backends = {prov.backend, prov.populations.staff or prov.backend, prov.populations.student or prov.backend}
    files = [prov.dovecot.passwd_file] if "dovecot" in backends else []
    if "local" in backends and prov.local.passwd_file:
        files.append(prov.local.passwd_file)
    return [settings.path(f).resolve() for f in files if f]


def shared_with_dovecot(settings: Settings) -> list[Path]:
    """The passwd-files Dovecot reads (its auth process runs as another user): never made private here."""
    files = {settings.provisioning.local.passwd_file, settings.provisioning.dovecot.passwd_file}
    return [settings.path(f).resolve() for f in files if f]


def check_dovecot_files(settings: Settings) -> None:
    """Refuse to start where Dovecot could not read its passwd-file, or an upgrade would start a new one.

    The data folder is private (0700), so Dovecot's auth process cannot enter it; and a file still at the old
    default place while the setting now names another would leave Dovecot reading accounts nobody updates.
    """
    data = Path(settings.data_dir).resolve()
    old = settings.path(OLD_DOVECOT_FILE).resolve()
    for path in dovecot_in_use(settings):
        if path.is_relative_to(data):
            raise ConfigError(
                f"Tệp passwd của Dovecot ({path}) nằm trong thư mục dữ liệu riêng tư {data} (quyền 0700), Dovecot "
                f"không đọc được: hãy chuyển tệp ra ngoài (ví dụ /var/lib/edudesk/dovecot/users, nhóm dovecot, "
                f"quyền 0640) và đặt [provisioning.dovecot].passwd_file.", code="config_dovecot_path")
        if old.exists() and path != old and not path.exists():
            raise ConfigError(
                f"Tìm thấy tệp passwd của Dovecot ở chỗ cũ {old}, nhưng cấu hình trỏ tới {path} (chưa có): hãy "
                f"chuyển tệp cũ tới {path} (nhóm dovecot, quyền 0640) rồi cập nhật passdb của Dovecot.",
                code="config_dovecot_moved")


def protect_state_files(settings: Settings) -> None:
    """Set the umask to 077, make the data folder 0700 and every state file in it (and the database) 0600."""
    check_dovecot_files(settings)
    os.umask(PRIVATE_UMASK)
    data = Path(settings.data_dir)
    data.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    _tighten(data, DIR_MODE)
    shared = shared_with_dovecot(settings)
    for path in shared:
        if path.is_relative_to(data.resolve()) and path.exists():
            log.warning("the Dovecot passwd-file %s is inside the private data folder %s, where Dovecot cannot "
                        "read it: set [provisioning.dovecot].passwd_file to a folder Dovecot's group may read",
                        path, data)
    for root, dirs, files in os.walk(data):
        for name in dirs:
            _tighten(Path(root, name), DIR_MODE)
        for name in files:
            if Path(root, name).resolve() not in shared:  # its mode is Dovecot's (passwd_file.py keeps it)
                _tighten(Path(root, name), FILE_MODE)
    db = sqlite_path(settings.database_url)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        if not db.exists():
            # SQLite gives the -wal and -shm files the mode of the database file: make it private first.
            os.close(os.open(db, os.O_WRONLY | os.O_CREAT, FILE_MODE))
        for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm"), Path(f"{db}-journal")):
            if path.exists():
                _tighten(path, FILE_MODE)
