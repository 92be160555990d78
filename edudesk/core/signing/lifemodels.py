"""The life of a record after signing, as tables: every revision a record left behind (archived as it was,
still verifiable) and every change started on an issued record (thu hồi, điều chỉnh) with its minutes."""

from __future__ import annotations

import enum

from tortoise import fields
from tortoise.models import Model

from edudesk.core.signing.models import RecordReturn, SchoolRecord


class RevisionKind(enum.StrEnum):
    """Why a revision of a record was retired (`record_revision.kind`)."""

    CORRECTION = "correction"  # Báo sai sót approved, the corrected PDF uploaded (records replace)
    WITHDRAWAL = "withdrawal"  # thu hồi, after the leadership signed the minutes
    ADJUSTMENT = "adjustment"  # điều chỉnh, after the leadership signed the minutes


class ChangeKind(enum.StrEnum):
    """A change of an issued record (`record_change.kind`)."""

    WITHDRAWAL = "withdrawal"
    ADJUSTMENT = "adjustment"


class ChangeState(enum.StrEnum):
    """Where a change stands (`record_change.state`)."""

    MINUTES = "minutes"  # the minutes (biên bản) wait for the leadership's signatures
    DONE = "done"  # the minutes are signed and the change is made


class RecordChange(Model):
    """Thu hồi or điều chỉnh of an issued record: the reason, the minutes (a record-like row of the class's
    minutes book, signed by its leadership), and for an adjustment the corrected PDF that becomes the next
    revision once the minutes are signed."""

    id = fields.BigIntField(primary_key=True)
    record: fields.ForeignKeyRelation[SchoolRecord] = fields.ForeignKeyField(
        "models.SchoolRecord", related_name="changes", on_delete=fields.CASCADE)
    record_id: int
    kind = fields.CharField(max_length=16)  # ChangeKind
    number = fields.CharField(max_length=64)  # the minutes' number: "01/2025-2026/BB-THHB"
    reason = fields.TextField()
    state = fields.CharField(max_length=16, default=ChangeState.MINUTES.value, db_index=True)  # ChangeState
    minutes: fields.ForeignKeyRelation[SchoolRecord] = fields.ForeignKeyField(
        "models.SchoolRecord", related_name="minutes_of", on_delete=fields.RESTRICT)
    minutes_id: int
    pdf = fields.BinaryField(null=True)  # adjustment: the corrected record as exported, before its fields
    prepared = fields.BinaryField(null=True)  # adjustment: the same with its signature fields, ready to sign
    actor = fields.CharField(max_length=200)
    created_at = fields.DatetimeField()
    done_at = fields.DatetimeField(null=True)

    class Meta:
        table = "record_change"


class RecordRevision(Model):
    """One retired revision of a record: the PDF exactly as it was (with the signatures it had), its hash, why
    it was retired, by whom and when, and what decided it (the return, or the change and its minutes)."""

    id = fields.BigIntField(primary_key=True)
    record: fields.ForeignKeyRelation[SchoolRecord] = fields.ForeignKeyField(
        "models.SchoolRecord", related_name="revisions", on_delete=fields.CASCADE)
    record_id: int
    number = fields.IntField()  # the record's `revision` this PDF was
    kind = fields.CharField(max_length=16)  # RevisionKind
    reason = fields.TextField(default="")
    pdf = fields.BinaryField()
    sha256 = fields.CharField(max_length=64)
    signatures = fields.IntField(default=0)
    actor = fields.CharField(max_length=200)
    created_at = fields.DatetimeField()
    record_return: fields.ForeignKeyNullableRelation[RecordReturn] = fields.ForeignKeyField(
        "models.RecordReturn", related_name="revisions", null=True, on_delete=fields.SET_NULL)
    record_return_id: int | None
    change: fields.ForeignKeyNullableRelation[RecordChange] = fields.ForeignKeyField(
        "models.RecordChange", related_name="revisions", null=True, on_delete=fields.SET_NULL)
    change_id: int | None

    class Meta:
        table = "record_revision"
        unique_together = (("record", "number"),)
