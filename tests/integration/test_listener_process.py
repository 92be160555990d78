"""`[smtpd] own_process`: the SMTP listener in a real child process, on the same database (SQLite, and
PostgreSQL with -m db).

A mail is in the database before the sender gets 250, the child wakes the parent's job worker, the child
stops with the parent (end of its stdin) and frees the port, and a listener that dies is started again on
the same port by `run()` under the supervisor.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import smtplib
import socket
from typing import Any

import pytest

from edudesk.core.intake.models import InboundMail
from edudesk.core.models import Job
from edudesk.core.requests.models import Request
from edudesk.mailer.listener import FIRST_BIND_RETRY_SECONDS, ListenerProcess
from tests.conftest import wait_until
from tests.mails import student_form_mail

pytestmark = pytest.mark.db


def _send(port: int, raw: bytes) -> str:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.ehlo("test.example")
        client.mail("phongdaotao@gmail.com")
        client.rcpt("it@truong.edu.vn")
        code, answer = client.data(raw)
        assert code == 250, answer
        return answer.decode()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped) counts as gone
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


async def test_a_mail_is_stored_by_the_child_before_250_and_the_parent_worker_is_woken(
        app_factory: Any, settings_factory: Any) -> None:
    app = await app_factory(settings_factory(smtpd={"enabled": True, "port": 0, "own_process": True}),
                            inline_analysis=True)
    assert isinstance(app.smtp, ListenerProcess)
    await app.smtp.start()
    assert app.smtp.proc is not None and app.smtp.proc.pid != os.getpid()
    app.worker.queue._wake.clear()
    answer = await asyncio.to_thread(_send, app.smtp.port, student_form_mail(message_id="<own-1@gmail.com>"))
    mail_id = int(answer.rsplit(" ", 1)[1])  # "OK stored as N": stored, with its job, when 250 came
    assert await InboundMail.filter(id=mail_id).exists()
    assert await Job.filter(key=f"process_mail:{mail_id}").exists()
    await asyncio.wait_for(app.worker.queue._wake.wait(), 10)  # woken through the pipe, not by a poll
    await app.worker.drain()
    row = await InboundMail.get(id=mail_id)
    assert (row.state, row.outcome) == ("processed", "request_created"), (row.state, row.outcome)
    assert await Request.filter(id=row.request_id).count() == 1  # type: ignore[attr-defined]


async def test_the_child_stops_with_the_parent_and_a_dead_child_is_started_again_on_its_port(
        app_factory: Any, settings_factory: Any) -> None:
    app = await app_factory(settings_factory(smtpd={"enabled": True, "port": 0, "own_process": True}),
                            inline_analysis=True)
    listener = app.smtp
    assert isinstance(listener, ListenerProcess)
    running = asyncio.get_running_loop().create_task(listener.run())
    await wait_until(lambda: listener.listening)
    assert listener.proc is not None
    first_pid, port = listener.proc.pid, listener.port
    os.kill(first_pid, signal.SIGKILL)  # the listener dies: run() fails, as the supervisor expects
    with pytest.raises(RuntimeError, match="exited"):
        await asyncio.wait_for(running, 30)
    assert not _alive(first_pid)
    running = asyncio.get_running_loop().create_task(listener.run())
    await wait_until(lambda: listener.listening and listener.proc is not None and listener.proc.pid != first_pid)
    assert listener.port == port  # configured as 0: started again where senders found it
    answer = await asyncio.to_thread(_send, port, student_form_mail(message_id="<own-2@gmail.com>"))
    assert await InboundMail.filter(id=int(answer.rsplit(" ", 1)[1])).exists()
    second = listener.proc
    assert second is not None
    running.cancel()  # the service stops: the child is told (end of stdin) and exits
    with pytest.raises(asyncio.CancelledError):
        await running
    assert second.returncode is not None and not _alive(second.pid)
    with pytest.raises(OSError):
        await asyncio.to_thread(_send, port, student_form_mail(message_id="<own-3@gmail.com>"))


async def test_a_port_another_program_holds_is_the_same_oserror_as_in_the_service_after_a_short_wait(
        app_factory: Any, settings_factory: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = await app_factory(settings_factory(smtpd={"enabled": True, "port": port, "own_process": True}),
                                inline_analysis=True)
        listener = app.smtp
        assert isinstance(listener, ListenerProcess)
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(OSError) as refused:
            await listener.start()
        waited = loop.time() - began
    assert refused.value.errno == errno.EADDRINUSE
    assert str(port) in str(refused.value)  # `edudesk run` names the port from this text
    assert FIRST_BIND_RETRY_SECONDS <= waited < FIRST_BIND_RETRY_SECONDS + 30  # waited briefly, then said so
    assert listener.proc is not None and listener.proc.returncode is not None  # the child is gone
