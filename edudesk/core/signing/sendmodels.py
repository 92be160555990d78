"""Where each issued record stands with the receiving portal (chưa gửi / đã gửi / lỗi), with the portal's
answer. One row per record, made at its first send; a record without a row has not been sent. A withdrawal or an
adjustment of a record the portal had accepted is told to it as a notice (`record_notice`), with its own state."""

from __future__ import annotations

import enum

from tortoise import fields
from tortoise.models import Model

from edudesk.core.signing.models import SchoolRecord


class SendState(enum.StrEnum):
    """A record's send state (`record_send.state`)."""

    UNSENT = "unsent"  # chưa gửi: not sent yet, or a send is still being retried
    SENT = "sent"  # đã gửi: the portal accepted it and gave a receipt; never sent again
    FAILED = "failed"  # lỗi: the portal refused it, or the package could not go; "Gửi lên hệ thống" tries again


class RecordSend(Model):
    """The portal's last word on one record: its receipt, or why it was refused or could not go."""

    id = fields.BigIntField(primary_key=True)
    record: fields.OneToOneRelation[SchoolRecord] = fields.OneToOneField(
        "models.SchoolRecord", related_name="portal_send", on_delete=fields.CASCADE)
    record_id: int
    klass_id = fields.BigIntField(db_index=True)
    state = fields.CharField(max_length=16, default=SendState.UNSENT.value, db_index=True)  # SendState
    receipt = fields.CharField(max_length=200, default="")  # the portal's receipt number of an accepted record
    answer = fields.TextField(default="")  # the portal's words: why it refused, or what went wrong
    sha256 = fields.CharField(max_length=64, default="")  # the PDF offered (and, once sent, the one accepted)
    package_id = fields.CharField(max_length=64, default="")  # the last package it went in
    attempts = fields.IntField(default=0)  # uploads of packages holding it
    sent_at = fields.DatetimeField(null=True)  # when the portal accepted it
    updated_at = fields.DatetimeField()

    class Meta:
        table = "record_send"


class NoticeKind(enum.StrEnum):
    """What a notice tells the portal about the version it holds (`record_notice.kind`, the manifest's status)."""

    WITHDRAWN = "withdrawn"  # thu hồi: the accepted version is no longer valid; kept only as a file
    REPLACED = "replaced"  # điều chỉnh: the accepted version is replaced by the new revision the notice carries


class RecordNotice(Model):
    """A change of a record the portal had accepted, to be told to it (core/signing/portalnotice.py): the receipt
    and hash of the version it holds, the change that decided it (its minutes), and the portal's answer. At most
    one open (not đã gửi) per record; a later change of the same record updates it."""

    id = fields.BigIntField(primary_key=True)
    record: fields.ForeignKeyRelation[SchoolRecord] = fields.ForeignKeyField(
        "models.SchoolRecord", related_name="portal_notices", on_delete=fields.CASCADE)
    record_id: int
    klass_id = fields.BigIntField(db_index=True)
    change_id = fields.BigIntField()  # the latest RecordChange it reports (its minutes go with it)
    kind = fields.CharField(max_length=16)  # NoticeKind
    replaces_receipt = fields.CharField(max_length=200)  # the portal's receipt of the version it holds
    replaces_sha256 = fields.CharField(max_length=64)
    state = fields.CharField(max_length=16, default=SendState.UNSENT.value, db_index=True)  # SendState
    receipt = fields.CharField(max_length=200, default="")  # the portal's receipt of the notice
    answer = fields.TextField(default="")
    package_id = fields.CharField(max_length=64, default="")
    attempts = fields.IntField(default=0)
    created_at = fields.DatetimeField()
    sent_at = fields.DatetimeField(null=True)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "record_notice"
