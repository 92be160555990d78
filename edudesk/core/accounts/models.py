"""The accounts' tables: accounts made, the account log, one-time password links, sealed secrets.

Schema changes go through `core/migrations` (tortoise migrations); the app label is `models`."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Account(Model):
    """An account edudesk knows of in the directory (local directory backend, or seen in a backend)."""

    id = fields.BigIntField(primary_key=True)
    address = fields.CharField(max_length=320, unique=True)
    population = fields.CharField(max_length=16)
    person_id = fields.CharField(max_length=64, default="", db_index=True)
    full_name = fields.CharField(max_length=300, default="")
    # "pending" (a create in flight: written before the backend is called, so a re-run finds its own
    # address), "active", "suspended", "deleted" (the address is never given again), "foreign" (held
    # in the backend by someone edudesk did not create).
    state = fields.CharField(max_length=16, default="active")
    created_at = fields.DatetimeField()
    password_hash = fields.CharField(max_length=300, default="")  # local directory only: scrypt, never clear
    request_id = fields.BigIntField(null=True)  # the request that created or last changed it
    updated_at = fields.DatetimeField(null=True)
    backend = fields.CharField(max_length=32, default="local")
    key = fields.CharField(max_length=200, null=True, unique=True)  # idempotency key of the create
    suspended_at = fields.DatetimeField(null=True)
    delete_after = fields.DatetimeField(null=True, db_index=True)  # suspended: deleted after the grace period

    class Meta:
        table = "account"



class AccountLog(Model):
    """The account log (the procedures' CreateEmail log): every change made in a directory. Never a password."""

    id = fields.BigIntField(primary_key=True)
    at = fields.DatetimeField(db_index=True)
    action = fields.CharField(max_length=16)  # create, link, reset, suspend, delete, taken
    address = fields.CharField(max_length=320, db_index=True)
    full_name = fields.CharField(max_length=300, default="")
    person_id = fields.CharField(max_length=64, default="")
    backend = fields.CharField(max_length=32)
    request_id = fields.BigIntField(null=True, db_index=True)
    approved_by = fields.CharField(max_length=200, default="")
    executed_by = fields.CharField(max_length=200, default="")
    ok = fields.BooleanField(default=True)
    answer = fields.CharField(max_length=500, default="")  # the backend's answer ("created", an error text)

    class Meta:
        table = "account_log"



class PasswordLink(Model):
    """A one-time link to the web console that shows generated passwords once, then expires."""

    token_hash = fields.CharField(max_length=64, primary_key=True)  # sha256 of the token in the link
    request_id = fields.BigIntField(db_index=True)
    recipient = fields.CharField(max_length=320)
    # [{"full_name", "address", "password_secret"}]: what the page shows; the PendingSecret rows are
    # deleted once it has been shown.
    accounts: fields.JSONField[list[dict[str, str]]] = fields.JSONField(default=list)
    is_list = fields.BooleanField(default=False)  # a unit's list: the page hands out an .xlsx
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    opened_at = fields.DatetimeField(null=True)

    class Meta:
        table = "password_link"



class PendingSecret(Model):
    """A generated password on its way to the requester: encrypted at rest, deleted once the mail is sent."""

    key = fields.CharField(max_length=200, primary_key=True)  # "pw:<request>:<row>"
    request_id = fields.BigIntField(db_index=True)
    sealed = fields.TextField()  # Fernet token
    created_at = fields.DatetimeField()

    class Meta:
        table = "pending_secret"
