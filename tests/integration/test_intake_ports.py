"""The IMAP watcher's ports are separate: mail storage (`IntakeSink`, the ledger), checkpoints
(`ImapCheckpoints`, `DbImapCheckpoints`) and channel health (`HealthReport`, the ledger)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from edudesk.core.intake.checkpoints import DbImapCheckpoints
from edudesk.core.intake.models import ChannelHealth, ImapCheckpoint
from edudesk.core.ports import FakeClock, HealthReport, ImapCheckpoints, IntakeSink

pytestmark = pytest.mark.db


async def test_checkpoints_are_remembered_per_mailbox_and_moved_forward(app_factory: Any) -> None:
    clock = FakeClock()
    await app_factory(clock=clock)
    store: ImapCheckpoints = DbImapCheckpoints(clock)
    assert await store.load_checkpoint("imap:a@x:993/INBOX") is None
    await store.save_checkpoint("imap:a@x:993/INBOX", 7, 10)
    clock.advance(timedelta(minutes=1))
    await store.save_checkpoint("imap:a@x:993/INBOX", 7, 25)
    await store.save_checkpoint("imap:b@x:993/INBOX", 9, 3)
    assert await store.load_checkpoint("imap:a@x:993/INBOX") == (7, 25)
    assert await store.load_checkpoint("imap:b@x:993/INBOX") == (9, 3)
    row = await ImapCheckpoint.get(key="imap:a@x:993/INBOX")
    assert row.updated_at == clock.now()
    assert await ImapCheckpoint.all().count() == 2


async def test_the_ledger_stores_mail_and_records_health_but_keeps_no_checkpoints(app_factory: Any) -> None:
    app = await app_factory(inline_analysis=True)
    sink: IntakeSink = app.ledger
    health: HealthReport = app.ledger
    assert not hasattr(sink, "load_checkpoint") and not hasattr(sink, "save_checkpoint")
    await health.report_health("imap", False, "OSError: connection refused")
    row = await ChannelHealth.get(channel="imap")
    assert not row.ok and row.failures == 1 and "connection refused" in row.detail
    await health.report_health("imap", True)
    assert (await ChannelHealth.get(channel="imap")).ok


async def test_a_recovery_is_never_recorded_without_its_audit_entry(app_factory: Any,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The audit insert fails (as a task cancelled between two commits would stop it): the channel must stay
    failing, so the next good report records the recovery and its entry together."""
    from edudesk.core.models import AuditEvent

    app = await app_factory(inline_analysis=True)
    await app.ledger.report_health("imap", False, "OSError: connection refused")
    real = AuditEvent.create

    async def cut_off(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("action") == "channel_recovered":
            raise RuntimeError("cancelled between the update and the audit entry")
        return await real(*args, **kwargs)

    monkeypatch.setattr(AuditEvent, "create", cut_off)
    with pytest.raises(RuntimeError):
        await app.ledger.report_health("imap", True)
    assert not (await ChannelHealth.get(channel="imap")).ok
    monkeypatch.undo()
    await app.ledger.report_health("imap", True)
    assert (await ChannelHealth.get(channel="imap")).ok
    recovered = await AuditEvent.filter(action="channel_recovered")
    assert len(recovered) == 1 and recovered[0].detail == {"channel": "imap", "after_failures": 1}
    await app.ledger.report_health("imap", True)  # already well: no second entry
    assert await AuditEvent.filter(action="channel_recovered").count() == 1
