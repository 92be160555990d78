"""The life of a record after signing: archived revisions, withdrawals and adjustments with their minutes, the
principal marked among the leadership and the turn of a signature within its stage."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0009_records_portal')]

    initial = False

    operations = [
        ops.CreateModel(
            name='RecordChange',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('record', fields.ForeignKeyField('models.SchoolRecord', source_field='record_id', db_constraint=True, to_field='id', related_name='changes', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharField(max_length=16)),
                ('number', fields.CharField(max_length=64)),
                ('reason', fields.TextField(unique=False)),
                ('state', fields.CharField(default='minutes', db_index=True, max_length=16)),
                ('minutes', fields.ForeignKeyField('models.SchoolRecord', source_field='minutes_id', db_constraint=True, to_field='id', related_name='minutes_of', on_delete=OnDelete.RESTRICT)),
                ('pdf', fields.BinaryField(null=True)),
                ('prepared', fields.BinaryField(null=True)),
                ('actor', fields.CharField(max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('done_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'record_change', 'app': 'models', 'pk_attr': 'id', 'table_description': "Thu hồi or điều chỉnh of an issued record: the reason, the minutes (a record-like row of the class's"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RecordRevision',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('record', fields.ForeignKeyField('models.SchoolRecord', source_field='record_id', db_constraint=True, to_field='id', related_name='revisions', on_delete=OnDelete.CASCADE)),
                ('number', fields.IntField()),
                ('kind', fields.CharField(max_length=16)),
                ('reason', fields.TextField(default='', unique=False)),
                ('pdf', fields.BinaryField()),
                ('sha256', fields.CharField(max_length=64)),
                ('signatures', fields.IntField(default=0)),
                ('actor', fields.CharField(max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('record_return', fields.ForeignKeyField('models.RecordReturn', source_field='record_return_id', null=True, db_constraint=True, to_field='id', related_name='revisions', on_delete=OnDelete.SET_NULL)),
                ('change', fields.ForeignKeyField('models.RecordChange', source_field='change_id', null=True, db_constraint=True, to_field='id', related_name='revisions', on_delete=OnDelete.SET_NULL)),
            ],
            options={'table': 'record_revision', 'app': 'models', 'unique_together': (('record', 'number'),), 'pk_attr': 'id', 'table_description': 'One retired revision of a record: the PDF exactly as it was (with the signatures it had), its hash, why'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='ClassSigner',
            name='principal',
            field=fields.BooleanField(default=False),
        ),
        ops.AddField(
            model_name='SignatureStep',
            name='turn',
            field=fields.IntField(default=0),
        ),
    ]
