"""Shared tables (the audit trail, the job queue); each feature keeps its own in its package's `models.py`.

Schema changes go through `core/migrations` (tortoise migrations); the app label is `models`.
"""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


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

