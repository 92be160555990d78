"""Main-process CPU per acknowledgement sent (issue 19's budget: <= 3 ms an acknowledgement).

`bench/intake.py` cannot tell this apart: in its burst the acknowledgements are sent while the requests are
still being made, in the same process. Here the same form mails (intake.py's generator, the school of
examples/config.hust.toml, its registry imported) go through the real ledger and intake in one process, with
the `send_mail` jobs held back (deferred by their handler) until every request is made. Then the held jobs are
made due and the job worker sends them all, and only that phase is measured: the process's CPU (all its
threads, user and system, as `bench/intake.py` counts the server's main process) over the acknowledgements
sent. Everything an acknowledgement costs the main process is in it: claiming and completing the jobs, the
outgoing-mail row, rendering the template, the MIME message, the maildir file written and synced, the sent
state and its audit entry.

    .venv/bin/python bench/acks.py [--count 1000] [--database sqlite|postgres]

The last line is one JSON object: `acks`, `seconds`, `acks_per_s`, `main_cpu_ms_per_ack`, `target_ms`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from intake import EDUDESK, OFFICE, ROOT, Mail, free_port, generate, write_config, write_registry  # noqa: E402
from intake_db import BenchDb, PostgresBenchDb, SqliteBenchDb  # noqa: E402

TARGET_MS = 3.0
HOLD_SECONDS = 3600.0


def prepare(count: int, url: str, tmp: Path) -> tuple[Path, list[Mail]]:
    """intake.py's form mails and its school's config, the registry imported as a school would."""
    mails, students, _warmup = generate(count, 0)
    config = write_config(tmp, free_port(), "WARNING", [], url)
    done = subprocess.run([*EDUDESK, "--config", str(config), "registry", "import",
                           str(write_registry(tmp, students)), "--population", "student"],
                          cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"registry import failed:\n{done.stdout}\n{done.stderr}")
    return config, mails


async def run(config: Path, mails: list[Mail]) -> dict[str, Any]:
    """The requests made with the acknowledgements held, then the acknowledgements sent, measured."""
    from edudesk.app import App
    from edudesk.core.config import load_settings
    from edudesk.core.jobs import JobKind, RetryLater
    from edudesk.core.models import Job
    from edudesk.core.requests.models import OutgoingMail, Request

    app = App(load_settings(str(config), environ={}), inline_analysis=True)
    await app.open()
    try:
        send = app.worker.handlers[JobKind.SEND_MAIL]
        held = True

        async def gated(job: Job) -> None:
            if held:
                raise RetryLater(HOLD_SECONDS)
            await send(job)

        app.worker.handlers[JobKind.SEND_MAIL] = gated
        for start in range(0, len(mails), 50):
            await asyncio.gather(*(app.ledger.store(m.raw, source="smtp", envelope_from=m.sender,
                                                   envelope_to=(OFFICE,)) for m in mails[start:start + 50]))
            await app.worker.drain()
        requests = await Request.all().count()
        waiting = await OutgoingMail.filter(key__startswith="ack:", state="pending").count()
        held = False
        await Job.filter(kind=JobKind.SEND_MAIL, state="pending").update(run_after=app.clock.now())
        wall, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        await app.worker.drain()
        wall, after = time.perf_counter() - wall, resource.getrusage(resource.RUSAGE_SELF)
        user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
        sent = await OutgoingMail.filter(key__startswith="ack:", state="sent").count()
        outbox = sum(1 for p in app.settings.path(app.settings.outgoing.maildir).rglob("*") if p.is_file())
    finally:
        await app.close()
    return {"mails": len(mails), "requests": requests, "held": waiting, "acks": sent, "outbox_files": outbox,
            "seconds": wall, "cpu_s": user + system, "user_s": user, "system_s": system}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args(argv)
    db: BenchDb = SqliteBenchDb(Path()) if args.database == "sqlite" else PostgresBenchDb()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config, mails = prepare(args.count, db.url, Path(tmp))
            r = asyncio.run(run(config, mails))
    finally:
        db.close()
    acks = int(r["acks"])
    per_ack = 1000 * float(r["cpu_s"]) / max(1, acks)
    rate = acks / float(r["seconds"]) if r["seconds"] else float("nan")
    print(f"edudesk acknowledgements ({args.database}): {r['mails']} mails, {r['requests']} requests, "
          f"{r['held']} acknowledgements held until all requests were made, {acks} sent "
          f"({r['outbox_files']} files in the outbox)")
    print(f"sending them: {float(r['seconds']):.2f} s = {rate:.1f} acknowledgements/s; "
          f"main-process CPU {per_ack:.2f} ms an acknowledgement ({1000 * float(r['user_s']) / max(1, acks):.2f} user, "
          f"{1000 * float(r['system_s']) / max(1, acks):.2f} system; target <= {TARGET_MS:.0f} ms: "
          f"{'PASS' if acks == r['held'] == r['requests'] and per_ack <= TARGET_MS else 'MISS'})")
    print(json.dumps({"bench": "acks", "database": args.database, "acks": acks, "seconds": round(r["seconds"], 3),
                      "acks_per_s": round(rate, 1), "main_cpu_ms_per_ack": round(per_ack, 2),
                      "user_ms_per_ack": round(1000 * float(r["user_s"]) / max(1, acks), 2),
                      "system_ms_per_ack": round(1000 * float(r["system_s"]) / max(1, acks), 2),
                      "target_ms": TARGET_MS}))
    return 0 if acks == r["held"] == r["requests"] else 1


if __name__ == "__main__":
    sys.exit(main())
