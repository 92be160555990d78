"""A Dovecot passwd-file kept by edudesk: atomic rewrites, one writer at a time, unrelated lines left alone.

Format (Dovecot's passwd-file): `user:{SCHEME}hash:uid:gid:(gecos):home:(shell):extra fields`, the extra
fields space-separated `key=value` pairs; empty lines and `#` comments are ignored by Dovecot and kept here.
Concurrent changes are folded into one rewrite (group commit): a list of 2,000 accounts costs a few hundred
rewrites, not 2,000. Writers in other processes are kept out by an flock on `<file>.lock`.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

# Dovecot refuses the login even with the right password (as no proxy/host field is set). The hash stays:
# a "!" before it would lock it too, but BLF-CRYPT then logs an error at every attempt ("not blowfish").
NOLOGIN = "nologin=y"
PAD = "#edudesk-pad "  # a comment only edudesk writes: see _seen_by_dovecot
_USER = re.compile(r"[^\s:#][^\s:]*")
_BAD_FIELD = re.compile(r"[:\r\n]")


@dataclass(frozen=True)
class PasswdEntry:
    """One user's line, split into Dovecot's fields."""

    user: str
    password: str = ""
    uid: str = ""
    gid: str = ""
    gecos: str = ""
    home: str = ""
    shell: str = ""
    extra: tuple[str, ...] = ()

    @property
    def locked(self) -> bool:
        """Whether Dovecot refuses this user's logins (suspended)."""
        return NOLOGIN in self.extra

    def line(self) -> str:
        """The line as Dovecot reads it (without its newline)."""
        fields = [self.user, self.password, self.uid, self.gid, self.gecos, self.home, self.shell,
                  " ".join(self.extra)]
        return ":".join(fields)


def parse_line(line: str) -> PasswdEntry | None:
    """The entry of a user line; None for blank lines and comments."""
    if not line.strip() or line.startswith("#"):
        return None
    # Extra fields may hold colons themselves (userdb_mail=maildir:~/Maildir): split at most 7 times.
    parts = line.split(":", 7)
    parts += [""] * (8 - len(parts))
    user, password, uid, gid, gecos, home, shell, extra = parts
    return PasswdEntry(user, password, uid, gid, gecos, home, shell, tuple(extra.split()))


@dataclass(frozen=True)
class Change:
    """One edit of one user's line: `set` (password, enabled), `suspend`, `unlock` or `remove`."""

    op: str
    user: str
    password: str = ""  # `set`: the "{SCHEME}hash" field
    home: str = ""  # `set` of a new line: its home directory


def check_field(name: str, value: str) -> None:
    """Refuse values that would break the line format (or smuggle in another user's line)."""
    if _BAD_FIELD.search(value) or (name == "user" and not _USER.fullmatch(value)):
        raise ValueError(f"{name} cannot be written into a passwd-file: {value!r}")


def _apply_all(lines: list[str], changes: list[Change]) -> list[bool]:
    """Edit `lines` in place, in one pass over the file whatever the number of changes; for each change,
    whether the user had a line (for `set`: whether it was updated rather than added)."""
    slots: list[str | None] = list(lines)
    where: dict[str, list[int]] = {}
    for index, line in enumerate(lines):
        entry = parse_line(line)
        if entry is not None:
            where.setdefault(entry.user, []).append(index)
    results = []
    for change in changes:
        found = where.get(change.user, [])
        results.append(bool(found))
        if change.op == "remove":
            for index in found:
                slots[index] = None
            where.pop(change.user, None)
        elif change.op == "set" and not found:
            where[change.user] = [len(slots)]
            slots.append(PasswdEntry(change.user, change.password, home=change.home).line())
        else:
            if change.op == "set":
                for index in found[1:]:
                    slots[index] = None  # a duplicate line: Dovecot reads only the first one
                del found[1:]
            for index in found:
                slots[index] = _changed(slots[index], change)
    lines[:] = [line for line in slots if line is not None]
    return results


def _changed(line: str | None, change: Change) -> str:
    entry = parse_line(line or "")
    assert entry is not None
    extra = tuple(f for f in entry.extra if f != NOLOGIN)  # other fields (quota, mail) stay as written
    if change.op == "set":
        return PasswdEntry(entry.user, change.password, entry.uid, entry.gid, entry.gecos, entry.home,
                           entry.shell, extra).line()
    if change.op == "unlock":
        return PasswdEntry(entry.user, entry.password, entry.uid, entry.gid, entry.gecos, entry.home,
                           entry.shell, extra).line()
    return PasswdEntry(entry.user, entry.password, entry.uid, entry.gid, entry.gecos, entry.home, entry.shell,
                       (*extra, NOLOGIN)).line()


class PasswdFile:
    """The passwd-file at `path`; every change is one atomic rewrite shared with the changes queued beside it."""

    def __init__(self, path: Path, *, new_mode: int = 0o640) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")
        self.new_mode = new_mode
        self.rewrites = 0  # how many times the file was replaced (the coalescing is measured by it)
        self._lock = asyncio.Lock()
        self._queue: list[tuple[Change, asyncio.Future[bool]]] = []
        self._cache: tuple[tuple[int, int, int], dict[str, PasswdEntry]] | None = None

    async def set_password(self, user: str, password: str, home: str) -> bool:
        """Write the user's password and enable the login (a new line if none); True if a line was there."""
        check_field("user", user)
        check_field("password", password)
        check_field("home", home)
        return await self._submit(Change("set", user, password, home))

    async def suspend(self, user: str) -> bool:
        """Refuse the user's logins, keeping the line; False when there is no line."""
        check_field("user", user)
        return await self._submit(Change("suspend", user))

    async def unlock(self, user: str) -> bool:
        """Allow the user's logins again with the password the line keeps; False when there is no line."""
        check_field("user", user)
        return await self._submit(Change("unlock", user))

    async def remove(self, user: str) -> bool:
        """Remove the user's line; False when there was none."""
        check_field("user", user)
        return await self._submit(Change("remove", user))

    async def entry(self, user: str) -> PasswdEntry | None:
        """The user's line as the file holds it now."""
        return (await asyncio.to_thread(self._read_all)).get(user)

    async def _submit(self, change: Change) -> bool:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()
        self._queue.append((change, done))
        async with self._lock:
            if not done.done():
                # The leader writes everything queued so far, its own change and those of the tasks
                # waiting behind it; they find theirs done when their turn comes.
                batch, self._queue = self._queue, []
                work = loop.run_in_executor(None, self._rewrite, [c for c, _ in batch])
                work.add_done_callback(lambda f: _settle(batch, f))
                try:
                    await asyncio.shield(work)
                except asyncio.CancelledError:
                    # The thread writes on: keep the next batch behind it so changes land in order.
                    await asyncio.wait([work])
                    raise
        return await done

    def _read_all(self) -> dict[str, PasswdEntry]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return {}
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if self._cache is not None and self._cache[0] == stamp:
            return self._cache[1]
        entries: dict[str, PasswdEntry] = {}
        for line in self.path.read_text(encoding="utf-8").splitlines():
            entry = parse_line(line)
            if entry is not None:
                entries.setdefault(entry.user, entry)  # Dovecot uses the first line of a user
        self._cache = (stamp, entries)
        return entries

    def _rewrite(self, changes: list[Change]) -> list[bool]:
        if not self.path.parent.exists():
            # Dovecot's auth process (another user, in the folder's group) must be able to enter it.
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(self.path.parent, 0o750)
        with open(self.lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # other edudesk processes (a second worker, a CLI) wait here
            try:
                return self._rewrite_locked(changes)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _rewrite_locked(self, changes: list[Change]) -> list[bool]:
        try:
            old: os.stat_result | None = os.stat(self.path)
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            old, lines = None, []
        lines = [line for line in lines if not line.startswith(PAD)]
        results = _apply_all(lines, changes)
        data = "".join(line + "\n" for line in lines).encode()
        data, stamp = _seen_by_dovecot(data, old)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            _same_owner(fd, old, self.path.parent, self.new_mode)
            os.utime(fd, ns=(stamp, stamp))
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a power cut
        finally:
            os.close(dir_fd)
        self.rewrites += 1
        return results


def _same_owner(fd: int, old: os.stat_result | None, folder: Path, new_mode: int) -> None:
    # Dovecot's auth process must still read the new file: keep the old one's mode and owner. A new file
    # takes its folder's group (set that to Dovecot's group) and `new_mode`.
    mode = (old.st_mode & 0o7777) if old is not None else new_mode
    os.fchmod(fd, mode)
    uid, gid = (old.st_uid, old.st_gid) if old is not None else (-1, os.stat(folder).st_gid)
    try:
        os.fchown(fd, uid, gid)
    except PermissionError:
        pass  # not root and not in that group: the file stays ours, with the mode above


def _seen_by_dovecot(data: bytes, old: os.stat_result | None) -> tuple[bytes, int]:
    """The bytes to write and the mtime (ns) to give them, so that Dovecot notices this version.

    Dovecot re-reads the file only when its size or its mtime in whole seconds differs from the version it
    read last, which may be any version written within the same second: a password reset (same length)
    would go unseen and the old password keep working. Within one second every version is therefore made
    larger than the one before (a padding comment at the end, dropped again by the next rewrite).
    """
    now = time.time_ns()
    if old is None or old.st_mtime_ns // 10**9 < now // 10**9:
        return data, now
    stamp = max(now, old.st_mtime_ns)  # an mtime in the future (a clock stepped back) is never undercut
    if len(data) > old.st_size:
        return data, stamp
    dots = max(0, old.st_size + 1 - len(data) - len(PAD) - 1)
    return data + (PAD + "." * dots + "\n").encode(), stamp


def _settle(batch: list[tuple[Change, asyncio.Future[bool]]], work: asyncio.Future[list[bool]]) -> None:
    for index, (_, done) in enumerate(batch):
        if done.done():
            continue
        if work.cancelled():
            done.cancel()
        elif (error := work.exception()) is not None:
            done.set_exception(error)
        else:
            done.set_result(work.result()[index])

