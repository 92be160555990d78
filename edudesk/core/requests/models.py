"""The requests' tables: a request, its people, the mails sent about it.

Schema changes go through `core/migrations` (tortoise migrations); the app label is `models`."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


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
    # None: no authentication result; True: aligned DMARC/DKIM pass; False: failed or not aligned
    sender_verified = fields.BooleanField(null=True)

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
    # a row with a problem (no ID, unknown to the registry) is provisioned only once someone approved it:
    approved_by = fields.CharField(max_length=200, default="")  # the staff member's name ("" = not approved)
    name_source = fields.CharField(max_length=16, default="")  # "" / "registry" (default) or "form": display name

    class Meta:
        table = "request_person"
        unique_together = (("request", "row"),)



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
