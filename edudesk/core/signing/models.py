"""Database models of the digital school records: roster, records, signature steps, signer credentials,
remote signing sessions and returns. Registered in the same tortoise app as core.models."""

from __future__ import annotations

import enum
from typing import Any

from tortoise import fields
from tortoise.models import Model


class ClassState(enum.StrEnum):
    """Where a class stands (`school_class.state`; the stored values are these strings)."""

    SIGNING = "signing"  # records still being signed
    COMPLETE = "complete"  # every record signed; the admin has not confirmed yet
    CONFIRMED = "confirmed"  # the admin confirmed completion
    EXPORTED = "exported"  # the PDFs and manifest were written
    MINUTES = "minutes"  # not a class: a class's book of minutes (biên bản), signed by its leadership (changes.py)


class RecordState(enum.StrEnum):
    """Where one record stands (`school_record.state`)."""

    SIGNING = "signing"
    RETURNED = "returned"  # Báo sai sót: signing stops until the admin decides
    SIGNED = "signed"  # every signature is there
    CORRECTING = "correcting"  # the cancellation was approved: waiting for the corrected PDF (records replace)
    WITHDRAWN = "withdrawn"  # thu hồi: the leadership signed the minutes; kept only as history


class StepState(enum.StrEnum):
    """One signature step (`signature_step.state`)."""

    WAITING = "waiting"  # an earlier stage is not complete
    OPEN = "open"  # the signer's turn
    SIGNED = "signed"


class SessionState(enum.StrEnum):
    """One Ký ngay session (`sign_session.state`)."""

    QUEUED = "queued"  # waiting for the sign_batch job
    PENDING = "pending"  # a remote signer waits for the teacher's confirmation
    DONE = "done"
    REFUSED = "refused"


class CredentialState(enum.StrEnum):
    """A registered signing credential (`signer_credential.state`): only an approved one signs."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    REVOKED = "revoked"


class ReturnState(enum.StrEnum):
    """A Báo sai sót (`record_return.state`)."""

    OPEN = "open"
    APPROVED = "approved"  # the record is re-made and signed again from the start
    REFUSED = "refused"  # signing continues where it was


class Teacher(Model):
    """A person who signs records: subject and homeroom teachers, leadership. `staff` is their chat identity."""

    id = fields.BigIntField(primary_key=True)
    code = fields.CharField(max_length=40, unique=True)  # ASCII, from the roster; used in field names
    name = fields.CharField(max_length=200)
    email = fields.CharField(max_length=320, default="", db_index=True)
    staff_id = fields.BigIntField(null=True, db_index=True)  # core.models.Staff (Telegram, web console)
    notify_via = fields.CharField(max_length=16, default="")  # "" (every linked chat), "telegram", "email"
    created_at = fields.DatetimeField()

    class Meta:
        table = "teacher"


class SchoolClass(Model):
    """A class of a school year, with its homeroom teacher and signing deadlines."""

    id = fields.BigIntField(primary_key=True)
    year = fields.CharField(max_length=16)  # "2025-2026"
    name = fields.CharField(max_length=32)  # "10A1"
    school = fields.CharField(max_length=300, default="")
    state = fields.CharField(max_length=16, default=ClassState.SIGNING.value)  # ClassState
    confirmed_by = fields.CharField(max_length=200, default="")
    confirmed_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "school_class"
        unique_together = (("year", "name"),)


class ClassSigner(Model):
    """Who signs a class's records at which stage (subject teachers with their subjects, homeroom, leadership)."""

    id = fields.BigIntField(primary_key=True)
    klass: fields.ForeignKeyRelation[SchoolClass] = fields.ForeignKeyField(
        "models.SchoolClass", related_name="signers", on_delete=fields.CASCADE)
    klass_id: int
    teacher: fields.ForeignKeyRelation[Teacher] = fields.ForeignKeyField(
        "models.Teacher", related_name="classes", on_delete=fields.RESTRICT)
    teacher_id: int
    stage = fields.IntField()  # core.signing.spec.Stage
    subjects: fields.JSONField[list[Any]] = fields.JSONField(default=list)  # subject teachers: ["Toán", "Tin học"]
    position = fields.IntField(default=0)  # leadership: order of the boxes on the signature page
    principal = fields.BooleanField(default=False)  # leadership: the principal (Hiệu trưởng), who may sign last

    class Meta:
        table = "class_signer"
        unique_together = (("klass", "teacher", "stage"),)


class SignerCredential(Model):
    """A signing credential a teacher registered (or the school's organisation credential, teacher null).

    Only an approved one signs. `config` holds where the key is (a sealed PKCS#12, a PKCS#11 token label,
    a remote provider's user and credential id); passwords and PINs are sealed or named by environment.
    """

    id = fields.BigIntField(primary_key=True)
    teacher: fields.ForeignKeyNullableRelation[Teacher] = fields.ForeignKeyField(
        "models.Teacher", related_name="credentials", null=True, on_delete=fields.CASCADE)
    teacher_id: int | None
    kind = fields.CharField(max_length=16)  # pkcs12 | pkcs11 | csc | smartca
    label = fields.CharField(max_length=200, default="")
    config: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    certificate = fields.BinaryField(null=True)  # DER
    subject_name = fields.CharField(max_length=300, default="")
    not_after = fields.DatetimeField(null=True)
    state = fields.CharField(max_length=16, default=CredentialState.PENDING.value)  # CredentialState
    decided_by = fields.CharField(max_length=200, default="")
    decided_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "signer_credential"


class SchoolRecord(Model):
    """One student's record PDF and where its signing stands. `pdf` is the current file."""

    id = fields.BigIntField(primary_key=True)
    klass: fields.ForeignKeyRelation[SchoolClass] = fields.ForeignKeyField(
        "models.SchoolClass", related_name="records", on_delete=fields.CASCADE)
    klass_id: int
    student_code = fields.CharField(max_length=40)
    student_name = fields.CharField(max_length=200)
    state = fields.CharField(max_length=16, default=RecordState.SIGNING.value, db_index=True)  # RecordState
    stage = fields.IntField(default=1)  # the open stage (5 once every signature is there)
    original = fields.BinaryField()  # as imported: a cancelled record is re-made from it
    pdf = fields.BinaryField()
    revision = fields.IntField(default=0)  # re-creations after an approved cancellation
    version = fields.IntField(default=0)  # bumped by every change of `pdf`: writers compare and swap
    held_by = fields.BigIntField(null=True)  # the SignSession changing the file now (one writer per record)
    signatures = fields.IntField(default=0)
    # `pdf` as the last check after a signature proved it (runner._save): its SHA-256 and length. The next
    # signature starts only on the same bytes, so only its own revision needs analysing (increment.py).
    pdf_sha256 = fields.CharField(max_length=64, default="")
    pdf_length = fields.BigIntField(default=0)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "school_record"
        unique_together = (("klass", "student_code"),)


class SignatureStep(Model):
    """One signature a record needs: a field, its stage, who signs it, and whether it is done."""

    id = fields.BigIntField(primary_key=True)
    record: fields.ForeignKeyRelation[SchoolRecord] = fields.ForeignKeyField(
        "models.SchoolRecord", related_name="steps", on_delete=fields.CASCADE)
    record_id: int
    stage = fields.IntField()
    field = fields.CharField(max_length=64)
    teacher_id = fields.BigIntField(null=True, db_index=True)  # null: the issuing signature (organisation)
    state = fields.CharField(max_length=16, default=StepState.WAITING.value, db_index=True)  # StepState
    turn = fields.IntField(default=0)  # within its stage, it opens once the steps of lower turns are signed
    opened_at = fields.DatetimeField(null=True)
    deadline = fields.DatetimeField(null=True)
    notified_at = fields.DatetimeField(null=True)
    reminded_at = fields.DatetimeField(null=True)
    escalated_at = fields.DatetimeField(null=True)
    signed_at = fields.DatetimeField(null=True)
    signed_by = fields.CharField(max_length=300, default="")  # the certificate's subject name
    session_id = fields.BigIntField(null=True)
    prepared = fields.BinaryField(null=True)  # remote signing: the PDF with the placeholder, until finished

    class Meta:
        table = "signature_step"
        unique_together = (("record", "field"),)


class SignSession(Model):
    """One tap on Ký ngay: a signer's batch of steps, and the remote confirmation it may be waiting for."""

    id = fields.BigIntField(primary_key=True)
    teacher_id = fields.BigIntField(null=True, db_index=True)
    credential_id = fields.BigIntField()
    actor = fields.CharField(max_length=200)
    state = fields.CharField(max_length=16, default=SessionState.QUEUED.value, db_index=True)  # SessionState
    steps: fields.JSONField[list[Any]] = fields.JSONField(default=list)  # step ids, in item order
    pending: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    detail = fields.TextField(default="")
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "sign_session"


class RecordReturn(Model):
    """Báo sai sót: a record sent back with a reason, which the admin approves (cancellation) or refuses."""

    id = fields.BigIntField(primary_key=True)
    record: fields.ForeignKeyRelation[SchoolRecord] = fields.ForeignKeyField(
        "models.SchoolRecord", related_name="returns", on_delete=fields.CASCADE)
    record_id: int
    actor = fields.CharField(max_length=200)
    reason = fields.TextField()
    state = fields.CharField(max_length=16, default=ReturnState.OPEN.value)  # ReturnState
    decided_by = fields.CharField(max_length=200, default="")
    decided_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "record_return"
