"""Tables of linking people to chats and acting from them: one-time link codes, one-time action links, and
the Zalo OA's OAuth tokens (sealed), shared by every replica."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class LinkCode(Model):
    """A one-time code that links a chat account (Zalo, Telegram) to a staff member (only its hash kept)."""

    id = fields.BigIntField(primary_key=True)
    code_hash = fields.CharField(max_length=64, db_index=True)
    staff_id = fields.BigIntField(db_index=True)
    surface = fields.CharField(max_length=16)  # zalo | telegram
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "link_code"


class ActionToken(Model):
    """A one-time action link or button payload, bound to one person and one action (only its hash kept)."""

    token_hash = fields.CharField(max_length=64, primary_key=True)
    staff_id = fields.BigIntField(db_index=True)
    action = fields.CharField(max_length=32)  # approve | reject | ask_info | provision | rec_sign | ...
    target = fields.BigIntField()  # request id, or class id for records
    version = fields.IntField(default=0)  # the request version the card showed
    arg = fields.IntField(default=0)  # the stage for rec_sign
    surface = fields.CharField(max_length=16)  # where it was handed out
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "action_token"


class OAuthToken(Model):
    """An OAuth access/refresh token pair (sealed with the secret key), one row per provider account.

    `generation` grows with every refresh: a replica refreshes only the generation it read, under a row lock,
    so the single-use refresh token is spent once however many replicas see it expire together."""

    name = fields.CharField(max_length=64, primary_key=True)  # "zalo_oa:<app id>"
    access_sealed = fields.TextField()
    refresh_sealed = fields.TextField()
    expires_at = fields.DatetimeField()
    generation = fields.IntField(default=0)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "oauth_token"
