"""The intake's tables: every mail received (the ledger), how far each IMAP mailbox is stored, channel health.

Schema changes go through `core/migrations` (tortoise migrations); the app label is `models`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from edudesk.core.requests.models import Request


class InboundMail(Model):
    """The intake ledger: every raw mail received, kept permanently, stored before it is acknowledged."""

    id = fields.BigIntField(primary_key=True)
    dedupe_key = fields.CharField(max_length=300, unique=True)  # "mid:<Message-ID>" or "sha256:<hash>"
    message_id = fields.CharField(max_length=998, default="")
    content_hash = fields.CharField(max_length=64, db_index=True)
    source = fields.CharField(max_length=16)  # smtp | imap | cli
    source_key = fields.CharField(max_length=300, null=True, unique=True)  # imap:...:uidvalidity:uid
    envelope_from = fields.CharField(max_length=320, default="")
    envelope_to: fields.JSONField[list[Any]] = fields.JSONField(default=list)
    size = fields.BigIntField(default=0)
    oversize = fields.BigIntField(null=True)  # set when only headers were kept (mail over the limit)
    purged_at = fields.DatetimeField(null=True)  # the body was dropped by [retention]; only headers are kept
    content = fields.BinaryField()  # the raw message bytes
    received_at = fields.DatetimeField()
    state = fields.CharField(max_length=16, default="pending", db_index=True)
    outcome = fields.CharField(max_length=32, default="")
    detail = fields.TextField(default="")
    request: fields.ForeignKeyNullableRelation[Request] = fields.ForeignKeyField(
        "models.Request", related_name="mails", null=True, on_delete=fields.SET_NULL
    )

    class Meta:
        table = "inbound_mail"



class SenderConfirmation(Model):
    """A link mailed to the address the registry holds for a person, proving an unverified request is theirs.

    Only the token's hash is kept; opening the link (once, before `expires_at`) sets `opened_at` and lets the
    request move on."""

    token_hash = fields.CharField(max_length=64, primary_key=True)
    request_id = fields.BigIntField(db_index=True)
    address = fields.CharField(max_length=320)  # where the link went (the registry's personal address)
    person_id = fields.CharField(max_length=64, default="")
    sent_by = fields.CharField(max_length=200, default="")  # the staff member who asked for it
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    opened_at = fields.DatetimeField(null=True)

    class Meta:
        table = "sender_confirmation"


class ImapCheckpoint(Model):
    """How far an IMAP mailbox has been stored: UIDVALIDITY and the last UID."""

    key = fields.CharField(max_length=300, primary_key=True)
    uidvalidity = fields.BigIntField()
    last_uid = fields.BigIntField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "imap_checkpoint"



class ChannelHealth(Model):
    """Health of an intake or chat channel, so a failing watcher is visible, never silent."""

    channel = fields.CharField(max_length=64, primary_key=True)
    ok = fields.BooleanField(default=True)
    failures = fields.IntField(default=0)
    detail = fields.TextField(default="")
    last_ok_at = fields.DatetimeField(null=True)
    last_error_at = fields.DatetimeField(null=True)
    alerted = fields.BooleanField(default=False)

    class Meta:
        table = "channel_health"
