"""Withdrawals and adjustments of records the portal had accepted, told to it as notices with their own state."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0010_record_revisions')]

    initial = False

    operations = [
        ops.CreateModel(
            name='RecordNotice',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('record', fields.ForeignKeyField('models.SchoolRecord', source_field='record_id', db_constraint=True, to_field='id', related_name='portal_notices', on_delete=OnDelete.CASCADE)),
                ('klass_id', fields.BigIntField(db_index=True)),
                ('change_id', fields.BigIntField()),
                ('kind', fields.CharField(max_length=16)),
                ('replaces_receipt', fields.CharField(max_length=200)),
                ('replaces_sha256', fields.CharField(max_length=64)),
                ('state', fields.CharField(default='unsent', db_index=True, max_length=16)),
                ('receipt', fields.CharField(default='', max_length=200)),
                ('answer', fields.TextField(default='', unique=False)),
                ('package_id', fields.CharField(default='', max_length=64)),
                ('attempts', fields.IntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'record_notice', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A change of a record the portal had accepted, to be told to it (core/signing/portalnotice.py): the receipt'},
            bases=['Model'],
        ),
    ]
