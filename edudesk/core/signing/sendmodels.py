"""Where each issued record stands with the receiving portal (chưa gửi / đã gửi / lỗi), with the portal's
answer. One row per record, made at its first send; a record without a row has not been sent."""

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
