"""`ImapCheckpoints` in the database: one `imap_checkpoint` row per watched mailbox."""

from __future__ import annotations

from edudesk.core.intake.models import ImapCheckpoint
from edudesk.core.ports import Clock


class DbImapCheckpoints:
    """How far each IMAP mailbox has been stored (the `ImapCheckpoints` port), kept in `imap_checkpoint`."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    async def load_checkpoint(self, key: str) -> tuple[int, int] | None:
        """(uidvalidity, last_uid) for an IMAP mailbox, or None the first time."""
        row = await ImapCheckpoint.get_or_none(key=key)
        return (row.uidvalidity, row.last_uid) if row else None

    async def save_checkpoint(self, key: str, uidvalidity: int, last_uid: int) -> None:
        """Remember how far an IMAP mailbox has been stored."""
        now = self.clock.now()
        updated = await ImapCheckpoint.filter(key=key).update(uidvalidity=uidvalidity, last_uid=last_uid,
                                                              updated_at=now)
        if not updated:
            await ImapCheckpoint.create(key=key, uidvalidity=uidvalidity, last_uid=last_uid, updated_at=now)
