"""The reports' table: every BM03 made, kept with its file for good (no retention rule deletes it).

Schema changes go through `core/migrations` (tortoise migrations); the app label is `models`."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class ReportArchive(Model):
    """A report made (by a person or the monthly schedule): its period, its file and who made it."""

    id = fields.BigIntField(primary_key=True)
    kind = fields.CharField(max_length=16, default="bm03")
    period_start = fields.DateField()
    period_end = fields.DateField()
    unit = fields.CharField(max_length=300, default="")  # "" = every unit
    lang = fields.CharField(max_length=8, default="vi")
    fmt = fields.CharField(max_length=8)  # "xlsx" | "pdf"
    filename = fields.CharField(max_length=300)
    content = fields.BinaryField()
    size = fields.IntField()
    sha256 = fields.CharField(max_length=64)
    made_by = fields.CharField(max_length=200)  # the person's name, or "system" for the monthly report
    made_at = fields.DatetimeField(db_index=True)
    scheduled = fields.BooleanField(default=False)

    class Meta:
        table = "report_archive"
