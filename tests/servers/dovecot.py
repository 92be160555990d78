"""A private, throwaway Dovecot IMAP server for integration tests, and the `dovecot` fixture."""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from imapclient import IMAPClient

DEFAULT_USER = "office@school.test"
DEFAULT_PASSWORD = "password"

_CONF = """\
# Written by tests/servers/dovecot.py for one test run; nothing here is read from /etc/dovecot.
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login{mechanisms}
# Tests try wrong passwords on purpose; the anti-brute-force delay would only slow them down.
auth_failure_delay = 0
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
{mail_ids}
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
{accounts}{oauth2}userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
{chroot}}}
service anvil {{
  # No auth-penalty socket: tests fail logins on purpose and must not wait seconds for the next one.
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
{chroot}}}
"""

# The variant with edudesk's own passwd-file (what the `dovecot` back end writes): Dovecot reads password,
# home and the nologin field of each line from it; users it does not know fall through to the fixed ones.
_ACCOUNTS = """\
passdb {{
  driver = passwd-file
  args = username_format=%u {root}/accounts
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/accounts
  default_fields = uid={uid} gid={gid} mail=maildir:~/Maildir
}}
"""


# The `oauth2_introspection` variant: bearer tokens (SASL XOAUTH2 / OAUTHBEARER) checked by asking a token
# server (RFC 7662, the fake in tests/fakes/oauth_tokens.py) whether they are active and whose they are.
_OAUTH2_PASSDB = """\
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/dovecot-oauth2.conf.ext
}}
"""
_OAUTH2_ARGS = """\
introspection_mode = post
introspection_url = {url}
username_attribute = username
active_attribute = active
active_value = true
"""


def find_dovecot() -> str | None:
    """The dovecot binary, also when /usr/sbin is not on a non-root user's PATH."""
    found = shutil.which("dovecot")
    if found is None and os.access("/usr/sbin/dovecot", os.X_OK):
        found = "/usr/sbin/dovecot"
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DovecotServer:
    """Dovecot 2.3 with its own config, users, maildirs and port under a temp dir; start() again after
    stop() reuses the same port and mail store, which is how tests simulate an outage."""

    def __init__(self, users: dict[str, str] | None = None, binary: str | None = None, *,
                 accounts_file: bool = False, oauth2_introspection: str = "") -> None:
        self.users = dict(users or {DEFAULT_USER: DEFAULT_PASSWORD})
        self.accounts_file = accounts_file
        self.oauth2_introspection = oauth2_introspection  # an RFC 7662 URL: also take XOAUTH2/OAUTHBEARER
        self.binary = binary or find_dovecot() or "dovecot"
        self.host = "127.0.0.1"
        self.port = 0
        self.root: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        # As root, mail is owned by the packaged `dovecot` user (Dovecot refuses uid 0 for mail);
        # as anyone else, everything runs as that user without chroots.
        self._as_root = os.geteuid() == 0
        owner = "dovecot" if self._as_root else pwd.getpwuid(os.geteuid()).pw_name
        entry = pwd.getpwnam(owner)
        self._mail_uid, self._mail_gid = entry.pw_uid, entry.pw_gid

    def __enter__(self) -> DovecotServer:
        try:
            return self.start()
        except BaseException:
            self.close()  # __exit__ will not run: do not leave the temp dir behind
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def log_path(self) -> Path:
        """Dovecot's own log, worth reading when a test fails."""
        assert self.root is not None
        return self.root / "dovecot.log"

    @property
    def accounts_path(self) -> Path:
        """The passwd-file of the `accounts_file` variant (lines `user:{SCHEME}hash:uid:gid::home::extra`)."""
        assert self.root is not None
        return self.root / "accounts"

    @property
    def home_template(self) -> str:
        """A home directory template for accounts in `accounts_path` (Dovecot creates the folders)."""
        assert self.root is not None
        return f"{self.root}/home/%d/%n"

    def can_log_in(self, user: str, password: str) -> bool:
        """Whether IMAP LOGIN with these credentials succeeds; a successful one also opens INBOX."""
        with IMAPClient(self.host, self.port, ssl=False, timeout=10) as client:
            try:
                client.login(user, password)
            except IMAPClient.Error:
                return False
            client.select_folder("INBOX")
            return True

    def maildir(self, user: str = DEFAULT_USER) -> Path:
        """The user's INBOX maildir."""
        assert self.root is not None
        return self.root / "mail" / user

    def start(self) -> DovecotServer:
        """Start (or restart) the server and wait until it greets on its port."""
        if self._proc is not None:
            return self
        if self.root is None:
            self._prepare()
        assert self.root is not None
        # A new session gives the master and its children one process group to stop together.
        with (self.root / "stderr.log").open("ab") as stderr:
            self._proc = subprocess.Popen([self.binary, "-F", "-c", str(self.root / "dovecot.conf")],
                                          stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
        self._wait_ready()
        return self

    def stop(self) -> None:
        """Stop the server and every imap process it spawned (clients see their connection drop)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        # SIGTERM to the whole group (the master alone takes a second to wind its children down);
        # a master that still waits for a login process after half a second is killed outright.
        for sig, grace in ((signal.SIGTERM, 0.5), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(grace)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        proc.poll()
        self._wait_closed()

    def close(self) -> None:
        """Stop the server and delete its temp dir."""
        self.stop()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def connect(self, user: str = DEFAULT_USER) -> IMAPClient:
        """A logged-in client, for tests that look at flags and folders (use it as a context manager)."""
        client = IMAPClient(self.host, self.port, ssl=False, timeout=10)
        client.login(user, self.users[user])
        return client

    def deliver(self, raw: bytes, user: str = DEFAULT_USER, *, seen: bool = False,
                when: datetime | None = None, mailbox: str = "INBOX") -> int:
        """Put a message into a mailbox with IMAP APPEND; returns its UID."""
        flags = [b"\\Seen"] if seen else []
        with self.connect(user) as client:
            answer = client.append(mailbox, raw, flags=flags, msg_time=when)
        match = re.search(rb"APPENDUID \d+ (\d+)", answer)
        assert match, answer
        return int(match.group(1))

    def deliver_seen(self, raw: bytes, user: str = DEFAULT_USER) -> int:
        """Deliver a message already marked \\Seen, as if someone had opened it in a mail client."""
        return self.deliver(raw, user, seen=True)

    def deliver_offline(self, raw: bytes, user: str = DEFAULT_USER) -> None:
        """Drop a message into maildir/new the way an MTA does, also while IMAP is down."""
        new = self.maildir(user) / "new"
        new.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns()}.P{os.getpid()}.edudesk-test"
        tmp = self.maildir(user) / "tmp" / name
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(raw)
        for path in (tmp.parent, new.parent, new, tmp):
            os.chown(path, self._mail_uid, self._mail_gid)
        tmp.rename(new / name)

    def recreate_mailbox_uidvalidity_change(self, user: str = DEFAULT_USER) -> None:
        """Rebuild INBOX's UID list (a restored or migrated mailbox): new UIDVALIDITY, UIDs renumbered,
        messages and their flags kept. The server restarts on the way."""
        self.stop()
        box = self.maildir(user)
        for path in box.iterdir():
            if path.name == "dovecot-uidlist" or path.name.startswith("dovecot.index"):
                path.unlink()
        self.start()

    def _prepare(self) -> None:
        self._check_version()
        self.root = Path(tempfile.mkdtemp(prefix="edudesk-dovecot-"))
        self.port = free_port()
        # Dovecot's unprivileged processes must be able to walk into the temp dir.
        self.root.chmod(0o755)
        mail = self.root / "mail"
        mail.mkdir()
        os.chown(mail, self._mail_uid, self._mail_gid)
        users = self.root / "users"
        users.write_text("".join(f"{name}:{{PLAIN}}{pw}::::::\n" for name, pw in self.users.items()))
        users.chmod(0o644)
        if self.accounts_file:
            # Made empty and readable by Dovecot's group, as an administrator would; the writer keeps both.
            self.accounts_path.touch(mode=0o640)
            self.accounts_path.chmod(0o640)
            os.chown(self.accounts_path, -1, self._mail_gid)
            home = self.root / "home"
            home.mkdir()
            os.chown(home, self._mail_uid, self._mail_gid)
        if self.oauth2_introspection:
            oauth2 = self.root / "dovecot-oauth2.conf.ext"
            oauth2.write_text(_OAUTH2_ARGS.format(url=self.oauth2_introspection))
            oauth2.chmod(0o644)
        me = pwd.getpwuid(os.geteuid()).pw_name
        (self.root / "dovecot.conf").write_text(_CONF.format(
            root=self.root, port=self.port, uid=self._mail_uid, gid=self._mail_gid,
            accounts=_ACCOUNTS.format(root=self.root, uid=self._mail_uid, gid=self._mail_gid)
            if self.accounts_file else "",
            mechanisms=" xoauth2 oauthbearer" if self.oauth2_introspection else "",
            oauth2=_OAUTH2_PASSDB.format(root=self.root) if self.oauth2_introspection else "",
            internal_user="dovecot" if self._as_root else me,
            internal_group="dovecot" if self._as_root else grp.getgrgid(os.getegid()).gr_name,
            login_user="dovenull" if self._as_root else me,
            mail_ids="mail_uid = dovecot\nmail_gid = dovecot\nfirst_valid_uid = 1" if self._as_root else "",
            chroot="" if self._as_root else "  chroot =\n",
        ))

    def _check_version(self) -> None:
        out = subprocess.run([self.binary, "--version"], capture_output=True, text=True, check=True).stdout
        # 2.4 renamed and restructured most of these settings (auth_allow_cleartext, mail_driver, ...).
        if not out.startswith("2.3."):
            raise RuntimeError(f"tests/servers/dovecot.py writes a Dovecot 2.3 config; found {out.strip()}")

    def _wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"dovecot exited with {self._proc.returncode}:\n{self._log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as sock:
                    if sock.recv(64).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"dovecot did not answer on port {self.port}:\n{self._log_tail()}")

    def _wait_closed(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
            except OSError:
                return
            time.sleep(0.02)

    def _log_tail(self) -> str:
        assert self.root is not None
        parts = [p.read_text(errors="replace")[-3000:] for p in (self.log_path, self.root / "stderr.log")
                 if p.exists()]
        return "\n".join(parts)


@pytest.fixture(name="dovecot")
def dovecot_fixture() -> Iterator[DovecotServer]:
    """A running private Dovecot with user office@school.test / password; skipped only off CI."""
    binary = find_dovecot()
    if binary is None:
        message = "dovecot is not installed: run scripts/install-test-deps.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with DovecotServer(binary=binary) as server:
        yield server
