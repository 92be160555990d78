"""Issue #13, the real `edudesk run` process: its parser processes leave with it when it is killed -9,
and what a sender puts in the SMTP envelope reaches the log escaped."""

from __future__ import annotations

import smtplib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_crash import Service
from tests.servers.smtp_sink import SmtpSink

pytestmark = [pytest.mark.db, pytest.mark.slow]


def children(pid: int) -> dict[int, str]:
    """Live child processes of `pid` (pid -> command line), read from /proc."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # exited meanwhile
        state, ppid = stat.rpartition(")")[2].split()[:2]
        if int(ppid) == pid and state != "Z":
            found[int(entry.name)] = cmdline
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def service(tmp_path: Path, smtp_sink: SmtpSink) -> Iterator[Service]:
    svc = Service(tmp_path, smtp_sink)
    svc.write_config(concurrency=1, relay_port=smtp_sink.port)
    yield svc
    svc.stop()


def test_parser_processes_exit_by_themselves_after_the_service_is_killed(service: Service) -> None:
    service.start()
    assert service.proc is not None
    parsers: dict[int, str] = {}
    for _ in range(100):  # the pool is started before the listener answers; give /proc a moment
        parsers = {p: c for p, c in children(service.proc.pid).items() if "multiprocessing" in c}
        if parsers:
            break
        time.sleep(0.1)
    assert parsers, children(service.proc.pid)
    service.kill()
    deadline = time.monotonic() + 5
    while any(alive(p) for p in parsers) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [p for p in parsers if alive(p)]
    assert not left, f"orphaned parser processes still running: {left}"


def test_a_nul_in_the_envelope_is_refused_and_logged_escaped(service: Service) -> None:
    service.start()
    with smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=30) as client:
        client.ehlo("client.test")
        code, _ = client.mail("an.nv\x002003@gmail.com")
        assert code == 501
        assert client.mail("an.nv\x002003@gmail.com")[0] == 501  # the same answer again: no 451 loop
    service.stop()
    log = service.log.read_bytes()
    assert b"an.nv\\x002003@gmail.com" in log
    assert b"\x00" not in log
