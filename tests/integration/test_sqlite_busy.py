"""The command line writing to the SQLite file while the service runs must not crash or dead-letter its jobs.

A real `edudesk registry import` subprocess imports a 3,000-student registry again and again (each run
rewrites every row in one transaction) while the service's job worker sends mail from the same file.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from tortoise.transactions import in_transaction

from edudesk.app import App
from edudesk.core.models import Job
from edudesk.core.requests.mailqueue import mail_context, queue_mail
from edudesk.core.requests.models import OutgoingMail
from tests.conftest import PG_URL, wait_until
from tests.mails import registry_xlsx

pytestmark = [pytest.mark.db, pytest.mark.slow,
              pytest.mark.skipif(bool(PG_URL), reason="SQLite's single writer is what is tested")]
ROOT = Path(__file__).resolve().parents[2]
STUDENTS = 3000
MAILS = 120


def registries(tmp_path: Path) -> list[Path]:
    """Two versions of one registry (every class changes between them), so each import rewrites every row."""
    return [registry_xlsx(tmp_path / f"sv-{v}.xlsx", [
        (f"2020{i:04d}", f"Nguyễn Văn An {i}", "05/03/2003", f"CNTT-0{v} K65", "") for i in range(STUDENTS)])
        for v in (1, 2)]


async def cli_imports(config: Path, files: list[Path], runs: int) -> list[tuple[int, str]]:
    """Run `edudesk registry import` `runs` times, one after the other; (exit code, stderr) of each."""
    results = []
    for run in range(runs):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "edudesk", "--config", str(config),
            "registry", "import", str(files[run % 2]), "--population", "student", cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _out, err = await proc.communicate()
        results.append((proc.returncode or 0, err.decode(errors="replace")[-2000:]))
    return results


async def queue_mails(app: App, stop: asyncio.Event) -> int:
    """Queue an acknowledgement every few milliseconds until `stop` (the service's own writes)."""
    count = 0
    while not stop.is_set() or count < MAILS:
        async with in_transaction() as conn:
            await queue_mail(conn, app.queue, app.clock, app.settings, key=f"busy:{count}", template="received",
                             recipient=f"sv{count}@gmail.com", request_id=None,
                             context={**mail_context(app.settings, "Nguyễn Văn An"), "number": count,
                                      "kind_label": "cấp tài khoản thư điện tử", "persons": [], "problems": [],
                                      "deadline": app.clock.now().isoformat()})
        app.queue.wake()
        count += 1
        await asyncio.sleep(0.02)
    return count


async def test_the_worker_survives_the_command_line_writing_the_same_file(
        app_factory: Any, settings_factory: Any, tmp_path: Path) -> None:
    settings = settings_factory(jobs={"max_attempts": 2, "concurrency": 4})
    app = await app_factory(settings, inline_analysis=True)
    config = tmp_path / "config.toml"
    config.write_text(f'[general]\ndata_dir = "{settings.data_dir}"\n', encoding="utf-8")
    files = registries(tmp_path)

    worker = asyncio.get_running_loop().create_task(app.worker.run())  # noqa: TID251 - test harness
    stop = asyncio.Event()
    producer = asyncio.get_running_loop().create_task(queue_mails(app, stop))  # noqa: TID251 - test harness
    try:
        results = await cli_imports(config, files, runs=4)
        stop.set()
        queued = await producer

        async def all_sent() -> bool:
            assert not worker.done(), worker.exception() if not worker.cancelled() else "cancelled"
            return await OutgoingMail.filter(state="sent").count() == queued

        await wait_until(all_sent, timeout=120, interval=0.2)
    finally:
        stop.set()
        app.worker.stop()
        await asyncio.wait_for(asyncio.gather(worker, producer, return_exceptions=True), 30)
    assert [code for code, _err in results] == [0] * 4, results
    assert await Job.filter(state="dead").count() == 0
    # A step that still met the lock past the busy timeout says so on its row: none did, the timeout absorbed it.
    locked = await Job.filter(last_error__icontains="locked").count()
    assert locked == 0
