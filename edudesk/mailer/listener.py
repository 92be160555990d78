"""The SMTP listener in a process of its own (`[smtpd] own_process = true`).

The child runs the same `SmtpIntake` over the same `MailLedger` as the in-process listener: a mail is in the
database (its `process_mail` job with it) before the sender gets 250, so nothing of the durability contract
changes. What moves is the CPU of SMTP sessions (aiosmtpd reads DATA line by line) and of storing mail, off the
main process that runs the jobs. The child wakes the main process's job worker through a pipe after each stored
mail; without the wake, the worker would still find the job at its next poll.

The parent sends the settings (and the secrets it read) as one JSON line on the child's stdin and keeps stdin
open: end of file (the parent stopped, or was killed) stops the child, so a listener never outlives its service
and holds the port. The child answers `port N` on stdout once it listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import signal
import sys
import time
from typing import Any

from edudesk.core.config import Settings
from edudesk.core.jobs import JobQueue
from edudesk.core.ports import Clock, SystemClock

log = logging.getLogger(__name__)
START_TIMEOUT = 60.0  # seconds for the child to import, open the database and bind
STOP_TIMEOUT = 10.0  # seconds for the child to finish after its stdin closes, before it is killed
BIND_RETRY_SECONDS = 10.0  # a listener just killed may hold the port a moment longer
# At the service's first start the port is waited for briefly: the child of a service just killed frees it as soon
# as it reads the end of its stdin; longer, another program holds it, which is said at once.
FIRST_BIND_RETRY_SECONDS = 3.0
COMMAND = [sys.executable, "-m", "edudesk.mailer.listener"]  # the child (bench/intake_count.py wraps it)


class ListenerProcess:
    """The parent's handle on the listener process: start it, restart it under the supervisor, stop it."""

    def __init__(self, settings: Settings, queue: JobQueue) -> None:
        self.settings = settings
        self.queue = queue
        self.proc: asyncio.subprocess.Process | None = None
        self._port: int | None = None
        self._wake_fd: int | None = None
        self.listening = False  # the child said it listens, and has not exited since

    @property
    def port(self) -> int:
        """The port the child listens on (useful when configured as 0)."""
        assert self._port is not None, "the listener process has not started"
        return self._port

    async def start(self) -> None:
        """Start the child and wait until it listens; raises when it does not."""
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *COMMAND, str(write_fd), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                pass_fds=(write_fd,))
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        self._wake_fd = read_fd
        asyncio.get_running_loop().add_reader(read_fd, self._woken)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        # Started again (under the supervisor), it listens where it did: with port 0, senders know that one.
        first = {"settings": self.settings.model_dump(mode="json"), "secrets": dict(self.settings._secrets),
                 "port": self._port if self._port is not None else self.settings.smtpd.port,
                 "bind_retry": BIND_RETRY_SECONDS if self._port is not None else FIRST_BIND_RETRY_SECONDS}
        self.proc.stdin.write(json.dumps(first).encode() + b"\n")
        try:
            await self.proc.stdin.drain()
            line = await asyncio.wait_for(self.proc.stdout.readline(), START_TIMEOUT)
        except (TimeoutError, OSError):
            line = b""
        if not line.startswith(b"port "):
            await self.stop()
            if line.startswith(b"oserror "):
                # The child could not listen (a port in use): the same error the listener raises in the service,
                # which `edudesk run` answers in one line naming the port and its setting.
                code, _, text = line.decode("utf-8", "replace").removeprefix("oserror ").strip().partition(" ")
                raise OSError(int(code) if code.isdigit() else 0, text)
            raise RuntimeError("the SMTP listener process did not start (its log says why)")
        self._port = int(line.split()[1])
        self.listening = True
        log.info("SMTP listener process %s on %s:%s", self.proc.pid, self.settings.smtpd.host, self._port)

    def _woken(self) -> None:
        assert self._wake_fd is not None
        try:
            data = os.read(self._wake_fd, 4096)
        except BlockingIOError:
            return
        if not data:  # the child is gone: its exit is handled in run()
            asyncio.get_running_loop().remove_reader(self._wake_fd)
            return
        self.queue.wake()

    async def run(self) -> None:
        """Start the child if needed, and fail when it exits (the supervisor starts it again)."""
        if self.proc is None or self.proc.returncode is not None:
            await self._close_wake()
            await self.start()
        assert self.proc is not None
        try:
            status = await self.proc.wait()
            self.listening = False
        finally:
            if self.proc.returncode is None:  # cancelled: the service is stopping
                await self.stop()
        raise RuntimeError(f"the SMTP listener process exited with status {status}")

    async def stop(self) -> None:
        """Ask the child to stop (end of its stdin) and wait for it; kill it if it does not."""
        proc, self.listening = self.proc, False
        if proc is not None and proc.returncode is None:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
            except TimeoutError:
                log.warning("SMTP listener process %s did not stop; killing it", proc.pid)
                proc.kill()
                await proc.wait()
        await self._close_wake()

    async def _close_wake(self) -> None:
        if self._wake_fd is not None:
            asyncio.get_running_loop().remove_reader(self._wake_fd)
            os.close(self._wake_fd)
            self._wake_fd = None


class _PipeWakingQueue(JobQueue):
    """The child's queue: a stored mail wakes the job worker of the parent, through the pipe."""

    def __init__(self, clock: Clock, settings: Settings, wake_fd: int) -> None:
        super().__init__(clock, settings.jobs)
        self.wake_fd = wake_fd
        os.set_blocking(wake_fd, False)

    def wake(self) -> None:
        super().wake()
        with contextlib.suppress(BlockingIOError, BrokenPipeError):  # a full pipe: a wake is already waiting
            os.write(self.wake_fd, b".")


async def _bind(smtp: Any, retry_seconds: float) -> None:
    deadline = time.monotonic() + retry_seconds
    while True:
        try:
            await smtp.start()
            return
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _serve(settings: Settings, port: int, wake_fd: int, bind_retry: float) -> int:
    from edudesk.core.db import close_database, open_database
    from edudesk.core.intake.ledger import MailLedger
    from edudesk.mailer.smtpd import SmtpIntake

    db = await open_database(settings, migrate_first=False)  # the parent migrated it
    try:
        clock = SystemClock()
        ledger = MailLedger(_PipeWakingQueue(clock, settings, wake_fd), clock, settings)
        smtp = SmtpIntake(ledger, settings.smtpd.model_copy(update={"port": port}), settings.intake)
        try:
            await _bind(smtp, bind_retry)
        except OSError as exc:
            # Told to the parent on the line it waits for, not as a traceback: it raises the same error.
            print(f"oserror {exc.errno or 0} {exc.strerror or exc}".replace("\n", " "), flush=True)
            return 1
        print(f"port {smtp.port}", flush=True)
        loop = asyncio.get_running_loop()
        gone = asyncio.Event()

        def stdin_readable() -> None:
            try:
                data = os.read(0, 4096)
            except BlockingIOError:
                return
            if not data:
                gone.set()

        os.set_blocking(0, False)
        loop.add_reader(0, stdin_readable)
        loop.add_signal_handler(signal.SIGTERM, gone.set)
        serving = loop.create_task(smtp.run())
        await gone.wait()
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        return 0
    finally:
        await close_database(db)


def main() -> int:
    """The child: read the settings from stdin, listen, store, wake the parent; stop at end of stdin."""
    from edudesk.core import logsetup
    from edudesk.core.statefiles import PRIVATE_UMASK

    wake_fd = int(sys.argv[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent stops us in turn
    os.umask(PRIVATE_UMASK)
    first = json.loads(sys.stdin.buffer.readline())
    settings = Settings.model_validate(first["settings"])
    settings._secrets.update(first["secrets"])
    logsetup.install(settings.general)
    return asyncio.run(_serve(settings, int(first["port"]), wake_fd, float(first["bind_retry"])))


if __name__ == "__main__":
    sys.exit(main())
