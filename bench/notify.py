"""Notification benchmark: N chat notices to N distinct Telegram chats through the real path.

Not a test: it prints figures. edudesk's App (SQLite in a temp dir) with the Telegram bot pointed at the
fake Bot API server of tests/fakes/, which enforces Telegram's limits (30 messages/s overall, 1/s per chat)
and answers 429 past them. N staff members with their own Telegram chat get one `chat_notice` job each
(as "sign now" notifications or reminders are queued); the job worker, the chat hub, the paced sender and
aiogram deliver them. Measured: the achieved rate over the sends (first to last, by the fake's clock) as a
fraction of 30/s, and the number of 429 answers. Target: >= 0.9 and zero.

    .venv/bin/python bench/notify.py [--count 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tortoise.transactions import in_transaction  # noqa: E402

from edudesk.app import App  # noqa: E402
from edudesk.core.chats.notify import enqueue_notice  # noqa: E402
from edudesk.core.config import load_settings  # noqa: E402
from edudesk.core.people.models import Staff  # noqa: E402
from tests.fakes.telegram import FakeTelegram  # noqa: E402

LIMIT = 30.0
TARGET = 0.9


async def run(count: int) -> int:
    fake = FakeTelegram(global_limit=(int(LIMIT), 1.0), chat_limit=(1, 1.0), group_limit=(20, 60.0))
    await fake.start()
    os.environ["EDUDESK_TELEGRAM_TOKEN"] = fake.token
    with tempfile.TemporaryDirectory(prefix="edudesk-bench-") as tmp:
        settings = load_settings(None, overrides={
            "general": {"data_dir": tmp, "log_level": "WARNING"}, "smtpd": {"enabled": False},
            "web": {"enabled": False}, "jobs": {"concurrency": 8, "poll_interval_seconds": 0.2},
            "telegram": {"enabled": True, "api_server": fake.url}}, environ=os.environ)
        app = App(settings, inline_analysis=True)
        await app.open()
        try:
            now = app.clock.now()
            await Staff.bulk_create([Staff(name=f"Giáo viên {i}", telegram_id=100_000 + i, roles=[], created_at=now)
                                     for i in range(count)], batch_size=1000)
            async with in_transaction() as conn:
                for staff in await Staff.all():
                    await enqueue_notice(conn, app.queue, f"bench:{staff.id}", f"staff:{staff.id}",
                                         f"Đến lượt thầy/cô ký học bạ lớp 10A{staff.id % 9} (bench)")
            worker = asyncio.get_running_loop().create_task(app.worker.run())  # noqa: TID251 - bench harness
            began = time.monotonic()
            app.queue.wake()
            await fake.wait_for(lambda: len(fake.sent_calls("sendMessage")) >= count, timeout=count / 10 + 60)
            wall = time.monotonic() - began
            app.worker.stop()
            await asyncio.wait_for(worker, 30)
        finally:
            await app.close()
            await fake.stop()
    times = sorted(c.time for c in fake.sent_calls("sendMessage"))
    span = times[-1] - times[0]
    rate = (len(times) - 1) / span if span > 0 else float("inf")
    fraction = rate / LIMIT
    chats = len({c.chat_id for c in fake.sent_calls("sendMessage")})
    print(f"notifications: {len(times)} to {chats} distinct chats in {wall:.1f} s (first send to last: {span:.1f} s)")
    print(f"achieved rate: {rate:.2f}/s = {fraction:.3f} of Telegram's {LIMIT:.0f}/s (target >= {TARGET})")
    print(f"429 answers:   {fake.count_429} (target 0)")
    ok = fraction >= TARGET and fake.count_429 == 0
    print("result:", "PASS" if ok else "MISS")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=5000)
    return asyncio.run(run(parser.parse_args().count))


if __name__ == "__main__":
    sys.exit(main())
