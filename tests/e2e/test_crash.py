"""SIGKILL the real `edudesk run` process at the worst moments; after a restart nothing is lost or doubled."""

from __future__ import annotations

import asyncio
import ctypes
import os
import random
import signal
import smtplib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edudesk.core.config import Settings, load_settings
from edudesk.core.db import close_database, open_database
from edudesk.core.intake.models import InboundMail
from edudesk.core.models import Job
from edudesk.core.requests.models import OutgoingMail, Request
from tests.conftest import PG_URL, fresh_database, make_settings, wait_until
from tests.mails import student_form_mail
from tests.servers.smtp_sink import SmtpSink, free_port

pytestmark = [pytest.mark.db, pytest.mark.slow]
EDUDESK = [sys.executable, "-m", "edudesk"]
ROOT = Path(__file__).resolve().parents[2]


def _die_with_parent() -> None:
    # A test run that is itself killed must not leave a service holding its ports and database.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Service:
    """`edudesk run` in a subprocess with its own config file; started, killed, started again."""

    def __init__(self, tmp_path: Path, sink: SmtpSink) -> None:
        self.tmp_path, self.sink = tmp_path, sink
        self.smtp_port = free_port()
        self.config = tmp_path / "config.toml"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tmp_path / "edudesk.log"

    def write_config(self, *, concurrency: int, relay_port: int) -> Settings:
        database = f'url = "{PG_URL}"' if PG_URL else 'url = "sqlite://{data_dir}/edudesk.sqlite3"'
        self.config.write_text(f"""
[general]
data_dir = "{self.tmp_path / 'data'}"
[database]
{database}
url_env = "EDUDESK_TEST_UNSET_DATABASE_URL"
[smtpd]
port = {self.smtp_port}
[web]
enabled = false
[intake]
parser_processes = 1
[outgoing]
transport = "smtp"
smtp_host = "127.0.0.1"
smtp_port = {relay_port}
auto_reply_limit = 1000
[jobs]
concurrency = {concurrency}
max_attempts = 1000
lease_seconds = 1.0
poll_interval_seconds = 0.05
backoff_initial_seconds = 0.05
backoff_max_seconds = 0.2
""", encoding="utf-8")
        return load_settings(self.config)

    def start(self, env: dict[str, str] | None = None, timeout: float = 30.0) -> None:
        """Start the service (with `env` added to the environment) and wait until its SMTP listener answers."""
        out = self.log.open("ab")
        environ = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen([*EDUDESK, "--config", str(self.config), "run"], cwd=ROOT, stdout=out,
                                     stderr=subprocess.STDOUT, env=environ, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=2) as client:
                    client.noop()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise AssertionError(f"edudesk exited: {self.log.read_text(errors='replace')[-3000:]}") from None
                time.sleep(0.1)
        raise AssertionError("edudesk did not start listening")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def send(self, raw: bytes) -> None:
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=30) as client:
            client.sendmail("an.nv2003@gmail.com", ["office-bknic@hust.edu.vn"], raw)


@pytest.fixture
def service(tmp_path: Path, smtp_sink: SmtpSink, _db_template_dir: Path) -> Iterator[Service]:
    # The service's database, migrated already (its own `db migrate` at start finds nothing to do).
    asyncio.run(fresh_database(make_settings(tmp_path), tmp_path))
    svc = Service(tmp_path, smtp_sink)
    yield svc
    svc.stop()


async def counts(settings: Settings) -> dict[str, int]:
    """What the database holds, read by this process as a new client."""
    db = await open_database(settings, migrate_first=False)
    try:
        return {
            "mails": await InboundMail.all().count(),
            "requests": await Request.all().count(),
            "acks": await OutgoingMail.filter(template="received").count(),
            "acks_sent": await OutgoingMail.filter(template="received", state="sent").count(),
            "open_jobs": await Job.filter(state__in=["pending", "running"]).count(),
            "dead_jobs": await Job.filter(state="dead").count(),
        }
    finally:
        await close_database(db)


def acks_in_sink(sink: SmtpSink, message_id: str) -> int:
    return sum(1 for m in sink.received() if m.message.get("In-Reply-To", "").strip() == message_id)


async def test_kill_between_storing_and_processing_then_restart_makes_one_request_and_one_ack(
        service: Service, smtp_sink: SmtpSink) -> None:
    # Workers paused (concurrency 0): the mail is stored and answered 250, and nothing processes it.
    settings = service.write_config(concurrency=0, relay_port=smtp_sink.port)
    service.start()
    await asyncio.to_thread(service.send, student_form_mail(message_id="<crash-1@gmail.com>"))
    service.kill()
    assert await counts(settings) == {"mails": 1, "requests": 0, "acks": 0, "acks_sent": 0, "open_jobs": 1,
                                      "dead_jobs": 0}

    service.write_config(concurrency=4, relay_port=smtp_sink.port)
    service.start()
    # The sender never saw our 250 in its own crash and sends the same mail again.
    await asyncio.to_thread(service.send, student_form_mail(message_id="<crash-1@gmail.com>"))
    await smtp_sink.wait_for(lambda m: m.message.get("In-Reply-To", "") == "<crash-1@gmail.com>", timeout=30)
    await wait_until(lambda: _settled(settings), timeout=30)
    await asyncio.sleep(0.5)  # room for a wrong second acknowledgement to show up
    assert await counts(settings) == {"mails": 1, "requests": 1, "acks": 1, "acks_sent": 1, "open_jobs": 0,
                                      "dead_jobs": 0}
    assert acks_in_sink(smtp_sink, "<crash-1@gmail.com>") == 1


async def test_kill_after_the_request_before_the_ack_is_sent_sends_it_once_after_restart(
        service: Service, smtp_sink: SmtpSink) -> None:
    # The relay is down: the request is made, its acknowledgement waits in the job table.
    down = free_port()
    settings = service.write_config(concurrency=4, relay_port=down)
    service.start()
    await asyncio.to_thread(service.send, student_form_mail(message_id="<crash-2@gmail.com>"))
    await wait_until(lambda: _has_request(settings), timeout=30)
    service.kill()
    assert acks_in_sink(smtp_sink, "<crash-2@gmail.com>") == 0

    service.write_config(concurrency=4, relay_port=smtp_sink.port)
    service.start()
    await smtp_sink.wait_for(lambda m: m.message.get("In-Reply-To", "") == "<crash-2@gmail.com>", timeout=30)
    await wait_until(lambda: _settled(settings), timeout=30)
    await asyncio.sleep(0.5)
    got = await counts(settings)
    assert (got["mails"], got["requests"], got["acks"], got["acks_sent"]) == (1, 1, 1, 1)
    assert acks_in_sink(smtp_sink, "<crash-2@gmail.com>") == 1


async def test_kill_at_a_random_moment_of_a_burst_loses_and_doubles_no_request(
        service: Service, smtp_sink: SmtpSink) -> None:
    settings = service.write_config(concurrency=4, relay_port=smtp_sink.port)
    mails = [student_form_mail(name="Nguyễn Văn An", sid=f"2021{i:04d}", message_id=f"<burst-{i}@gmail.com>")
             for i in range(30)]
    service.start()
    accepted: list[int] = []

    def send_all() -> None:
        for i, raw in enumerate(mails):
            try:
                service.send(raw)
            except (OSError, smtplib.SMTPException):
                return  # the server died under us: this mail and the rest were not accepted
            accepted.append(i)

    sender = asyncio.create_task(asyncio.to_thread(send_all))  # noqa: TID251 - test harness
    await asyncio.sleep(random.uniform(0.3, 1.2))
    service.kill()
    await sender
    # A mail cut off mid-DATA may or may not have been stored; a client resends everything it
    # has no 250 for, and we resend a few accepted ones too, as a confused client would.
    service.start()
    for i in range(len(mails)):
        if i not in accepted or i % 7 == 0:
            await asyncio.to_thread(service.send, mails[i])
    await wait_until(lambda: _settled(settings, requests=len(mails)), timeout=60)
    await asyncio.sleep(0.5)
    got = await counts(settings)
    assert (got["mails"], got["requests"], got["acks"], got["dead_jobs"]) == (30, 30, 30, 0), got
    for i in range(len(mails)):
        # The SMTP relay is at-least-once: a kill after its 250 and before the commit resends the
        # same Message-ID, which the recipient's client shows once. Anything more is a bug.
        assert 1 <= acks_in_sink(smtp_sink, f"<burst-{i}@gmail.com>") <= 2
    resent = sum(acks_in_sink(smtp_sink, f"<burst-{i}@gmail.com>") - 1 for i in range(len(mails)))
    assert resent <= 4  # at most one per job in flight (concurrency 4) at the moment of the kill


async def _has_request(settings: Settings) -> bool:
    return (await counts(settings))["requests"] == 1


async def _settled(settings: Settings, requests: int = 1) -> bool:
    got = await counts(settings)
    return got["requests"] == requests and got["open_jobs"] == 0
