"""`edudesk run` answers SMTP at once: the parser processes start in the background, a mail sent before they
are up is stored and answered 250, and it becomes a request as soon as they are."""

from __future__ import annotations

import asyncio
import os
import smtplib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edudesk.core.config import Settings
from edudesk.core.db import close_database, open_database
from edudesk.core.intake.models import InboundMail
from edudesk.core.requests.models import Request
from tests.conftest import fresh_database, make_settings, wait_until
from tests.e2e.test_crash import EDUDESK, ROOT, Service, _die_with_parent
from tests.mails import student_form_mail
from tests.servers.smtp_sink import SmtpSink

pytestmark = [pytest.mark.db, pytest.mark.slow]
# The issue: "answers SMTP within 2 s of start". Asserted with room for a loaded test machine; the figure measured
# is printed (pytest -s). Before the change the listener waited for every parser process (10-15 s on a school's
# server; here at least PARSER_START_DELAY, so this bound fails on that behaviour whatever the machine).
BOUND = 6.0
PARSER_START_DELAY = 12.0  # seconds each parser process takes to start, as on a slow, loaded server
_SLOW_SITE = """import sys, time
if "--multiprocessing-fork" in sys.argv:  # a parser process (spawned), not the service itself
    time.sleep({delay})
"""


class Timed(Service):
    """`edudesk run` started by the test, with the moment it was started."""

    def launch(self, env: dict[str, str]) -> float:
        """Start the process without waiting for it; the monotonic time of the start."""
        started = time.monotonic()
        self.proc = subprocess.Popen([*EDUDESK, "--config", str(self.config), "run"], cwd=ROOT,
                                     stdout=self.log.open("ab"), stderr=subprocess.STDOUT, env=env,
                                     preexec_fn=_die_with_parent)
        return started

    def first_answer(self, raw: bytes, deadline: float) -> tuple[float, float]:
        """Connect as soon as the port takes it and send one mail: the times of the 220 greeting and the 250."""
        assert self.proc is not None
        while time.monotonic() < deadline:
            try:
                client = smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=30)
            except OSError:
                if self.proc.poll() is not None:
                    raise AssertionError(f"edudesk exited: {self.log.read_text(errors='replace')[-3000:]}") from None
                time.sleep(0.01)  # not listening yet: look again
                continue
            greeted = time.monotonic()
            with client:
                refused = client.sendmail("an.nv2003@gmail.com", ["office-bknic@hust.edu.vn"], raw)
                assert refused == {}
                return greeted, time.monotonic()  # sendmail raises on anything but 250
        raise AssertionError(f"edudesk did not answer in time: {self.log.read_text(errors='replace')[-3000:]}")


@pytest.fixture
def service(tmp_path: Path, smtp_sink: SmtpSink, _db_template_dir: Path) -> Iterator[Timed]:
    # A database in use already (migrated): the start of a service that runs day after day.
    asyncio.run(fresh_database(make_settings(tmp_path), tmp_path))
    svc = Timed(tmp_path, smtp_sink)
    yield svc
    svc.stop()


async def _stored(settings: Settings) -> tuple[int, int]:
    db = await open_database(settings, migrate_first=False)
    try:
        return await InboundMail.all().count(), await Request.all().count()
    finally:
        await close_database(db)


def _slow_parsers(tmp_path: Path) -> dict[str, str]:
    """The environment of a service whose parser processes take PARSER_START_DELAY seconds to start."""
    site = tmp_path / "slow-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_SLOW_SITE.format(delay=PARSER_START_DELAY), encoding="utf-8")
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}


async def test_mail_sent_while_parsers_start_is_answered_250_at_once_and_becomes_a_request(
        service: Timed, smtp_sink: SmtpSink, tmp_path: Path) -> None:
    settings = service.write_config(concurrency=2, relay_port=smtp_sink.port)
    started = service.launch(_slow_parsers(tmp_path))
    greeted, answered = await asyncio.to_thread(service.first_answer, student_form_mail(
        message_id="<fast-start-1@gmail.com>"), started + 60)
    print(f"\nslow parser start ({PARSER_START_DELAY:g} s): 220 after {greeted - started:.2f} s, "
          f"250 after {answered - started:.2f} s")
    assert answered - started < BOUND
    # Stored (the 250 promised it) while the parsers are still starting: no request can exist yet.
    mails, requests = await _stored(settings)
    assert mails == 1
    if time.monotonic() - started < PARSER_START_DELAY:
        assert requests == 0
    # Not refused, not dead: the job waits for the parser processes and then makes the request.
    assert await wait_until(lambda: _has_request(settings), timeout=PARSER_START_DELAY + 60)
    log = service.log.read_text(errors="replace")
    assert "parser processes ready" in log
    assert "Traceback" not in log


async def _has_request(settings: Settings) -> bool:
    return (await _stored(settings))[1] == 1


async def test_service_answers_a_mail_within_the_bound_of_its_start(service: Timed, smtp_sink: SmtpSink) -> None:
    # The real start, nothing slowed: the figure to compare with the 2 s the issue asks for.
    settings = service.write_config(concurrency=2, relay_port=smtp_sink.port)
    started = service.launch({**os.environ, "PYTHONUNBUFFERED": "1"})
    greeted, answered = await asyncio.to_thread(service.first_answer, student_form_mail(
        message_id="<fast-start-2@gmail.com>"), started + 60)
    print(f"\nstart: 220 after {greeted - started:.2f} s, 250 after {answered - started:.2f} s")
    assert answered - started < BOUND
    assert await wait_until(lambda: _has_request(settings), timeout=60)
