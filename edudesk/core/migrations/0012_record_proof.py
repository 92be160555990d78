"""Each record remembers the SHA-256 and length of the file its last check proved (core/signing/increment.py)."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0011_portal_notices')]

    initial = False

    operations = [
        ops.AddField(
            model_name='SchoolRecord',
            name='pdf_length',
            field=fields.BigIntField(default=0),
        ),
        ops.AddField(
            model_name='SchoolRecord',
            name='pdf_sha256',
            field=fields.CharField(default='', max_length=64),
        ),
    ]
