"""The chats' table: every card posted in a chat, claimed before it is posted.

Schema changes go through `core/migrations` (tortoise migrations); the app label is `models`."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class ChatCard(Model):
    """Where a request's card was posted in a chat, so every later action edits it in place."""

    id = fields.BigIntField(primary_key=True)
    surface = fields.CharField(max_length=16)  # telegram | zalo
    chat = fields.CharField(max_length=64)
    request_id = fields.BigIntField(db_index=True)
    message_ref = fields.CharField(max_length=64)
    audience = fields.CharField(max_length=16)  # office | technical | head
    version = fields.IntField(default=0)  # the request version the card shows
    updated_at = fields.DatetimeField()

    class Meta:
        table = "chat_card"
        unique_together = (("surface", "chat", "request_id"),)
