"""Database models (tortoise-orm). Schema changes go through `core/migrations` (tortoise migrations)."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


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


class Request(Model):
    """A request from a mail: its kind, state, requester, people and findings."""

    id = fields.BigIntField(primary_key=True)
    kind = fields.CharField(max_length=32)
    population = fields.CharField(max_length=16)
    state = fields.CharField(max_length=16, db_index=True)
    sender = fields.CharField(max_length=320, db_index=True)
    sender_name = fields.CharField(max_length=300, default="")
    subject = fields.CharField(max_length=998, default="")
    message_id = fields.CharField(max_length=998, default="")
    unit = fields.CharField(max_length=300, default="")
    source = fields.CharField(max_length=16, default="body")
    problems: fields.JSONField[list[Any]] = fields.JSONField(default=list)  # request-level Problem.to_json() list
    flags: fields.JSONField[list[Any]] = fields.JSONField(default=list)  # e.g. ["auth_failed", "external_sender"]
    auth_results: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    lang = fields.CharField(max_length=8, default="vi")
    received_at = fields.DatetimeField()
    deadline = fields.DatetimeField(null=True)
    updated_at = fields.DatetimeField()
    version = fields.IntField(default=0)  # bumped by every decision: two taps on one card, exactly one wins
    assignee_id = fields.BigIntField(null=True, db_index=True)  # the staff member a head gave it to
    reminded_at = fields.DatetimeField(null=True)  # overdue reminder sent for the current step
    escalated_at = fields.DatetimeField(null=True)  # head told for the current step

    class Meta:
        table = "request"


class RequestPerson(Model):
    """One person of a request (a row of a list), with the per-field findings."""

    id = fields.BigIntField(primary_key=True)
    request: fields.ForeignKeyRelation[Request] = fields.ForeignKeyField(
        "models.Request", related_name="persons", on_delete=fields.CASCADE
    )
    row = fields.IntField()
    person_id = fields.CharField(max_length=64, default="", db_index=True)
    full_name = fields.CharField(max_length=300, default="")
    proposed_address = fields.CharField(max_length=320, default="", db_index=True)
    data: fields.JSONField[dict[str, Any]] = fields.JSONField()  # Person.to_json()
    problems: fields.JSONField[list[Any]] = fields.JSONField(default=list)
    # Provisioning, per row (a bulk list resumes after a crash and retries only failed rows):
    outcome = fields.CharField(max_length=16, default="")  # "" (not yet), "done", "failed"
    result = fields.CharField(max_length=16, default="")  # created, linked, reset, suspended, deleted, absent
    final_address = fields.CharField(max_length=320, default="")  # may differ from the proposed one (taken)
    outcome_detail = fields.CharField(max_length=500, default="")  # the backend's refusal, for staff

    class Meta:
        table = "request_person"
        unique_together = (("request", "row"),)


class RegistryEntry(Model):
    """A person of the staff/student registry (the school's HR or student software export)."""

    id = fields.BigIntField(primary_key=True)
    population = fields.CharField(max_length=16)
    person_id = fields.CharField(max_length=64)
    full_name = fields.CharField(max_length=300)
    name_key = fields.CharField(max_length=300, db_index=True)  # folded, for search
    date_of_birth = fields.DateField(null=True)
    unit = fields.CharField(max_length=300, default="")
    class_name = fields.CharField(max_length=100, default="")
    cohort = fields.CharField(max_length=50, default="")
    email = fields.CharField(max_length=320, default="")  # institutional account, when it has one
    mobile = fields.CharField(max_length=32, default="")
    imported_at = fields.DatetimeField()

    class Meta:
        table = "registry_entry"
        unique_together = (("population", "person_id"),)


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


class AuditEvent(Model):
    """Append-only audit trail: who did what to which request or mail, and when. Never a password."""

    id = fields.BigIntField(primary_key=True)
    at = fields.DatetimeField(db_index=True)
    actor = fields.CharField(max_length=200)
    action = fields.CharField(max_length=64, db_index=True)
    request_id = fields.BigIntField(null=True, db_index=True)
    mail_id = fields.BigIntField(null=True, db_index=True)
    detail: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)

    class Meta:
        table = "audit_event"


class Job(Model):
    """A durable job (transactional outbox): enqueued in the same transaction as the state change."""

    id = fields.BigIntField(primary_key=True)
    kind = fields.CharField(max_length=64)
    key = fields.CharField(max_length=300, unique=True)  # idempotency key: one job per effect
    payload: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    state = fields.CharField(max_length=16, default="pending")  # pending | running | done | dead
    attempts = fields.IntField(default=0)
    run_after = fields.DatetimeField()
    locked_until = fields.DatetimeField(null=True)
    last_error = fields.TextField(default="")
    created_at = fields.DatetimeField()
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "job"
        indexes = (("state", "run_after"),)


class OutgoingMail(Model):
    """A mail edudesk sends (acknowledgement, need-info, rejection, result), one per effect key."""

    id = fields.BigIntField(primary_key=True)
    key = fields.CharField(max_length=300, unique=True)
    request_id = fields.BigIntField(null=True, db_index=True)
    template = fields.CharField(max_length=32)
    recipient = fields.CharField(max_length=320, db_index=True)
    message_id = fields.CharField(max_length=300)
    automatic = fields.BooleanField(default=True)
    state = fields.CharField(max_length=16, default="pending")  # pending|sending (slot taken)|sent|suppressed|dead
    detail = fields.TextField(default="")
    created_at = fields.DatetimeField(db_index=True)
    sent_at = fields.DatetimeField(null=True)

    class Meta:
        table = "outgoing_mail"


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


class Staff(Model):
    """An office member who acts in chat or in the web console, with roles (office, technical, head, admin)."""

    id = fields.BigIntField(primary_key=True)
    name = fields.CharField(max_length=200)
    email = fields.CharField(max_length=320, default="", db_index=True)
    roles: fields.JSONField[list[Any]] = fields.JSONField(default=list)
    telegram_id = fields.BigIntField(null=True, unique=True)
    zalo_id = fields.CharField(max_length=64, null=True, unique=True)  # the Zalo user id the bot/OA sees
    notify_via = fields.CharField(max_length=16, default="")  # "" (first linked chat) | telegram | zalo | email
    active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "staff"


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


class PendingSecret(Model):
    """A generated password on its way to the requester: encrypted at rest, deleted once the mail is sent."""

    key = fields.CharField(max_length=200, primary_key=True)  # "pw:<request>:<row>"
    request_id = fields.BigIntField(db_index=True)
    sealed = fields.TextField()  # Fernet token
    created_at = fields.DatetimeField()

    class Meta:
        table = "pending_secret"


class LoginToken(Model):
    """A one-time sign-in link for the web console (only its hash is stored)."""

    token_hash = fields.CharField(max_length=64, primary_key=True)
    staff_id = fields.BigIntField()
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "login_token"


class WebSession(Model):
    """A signed-in web console session (cookie value hashed) with its CSRF token."""

    token_hash = fields.CharField(max_length=64, primary_key=True)
    staff_id = fields.BigIntField(db_index=True)
    csrf = fields.CharField(max_length=64)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()

    class Meta:
        table = "web_session"
