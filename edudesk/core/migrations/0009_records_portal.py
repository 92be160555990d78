"""Records sent to the receiving portal: one row per record with its send state and the portal's answer."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0008_reports')]

    initial = False

    operations = [
        ops.CreateModel(
            name='RecordSend',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('record', fields.OneToOneField('models.SchoolRecord', source_field='record_id', db_constraint=True, to_field='id', related_name='portal_send', on_delete=OnDelete.CASCADE)),
                ('klass_id', fields.BigIntField(db_index=True)),
                ('state', fields.CharField(default='unsent', db_index=True, max_length=16)),
                ('receipt', fields.CharField(default='', max_length=200)),
                ('answer', fields.TextField(default='', unique=False)),
                ('sha256', fields.CharField(default='', max_length=64)),
                ('package_id', fields.CharField(default='', max_length=64)),
                ('attempts', fields.IntField(default=0)),
                ('sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'record_send', 'app': 'models', 'pk_attr': 'id', 'table_description': "The portal's last word on one record: its receipt, or why it was refused or could not go."},
            bases=['Model'],
        ),
    ]
