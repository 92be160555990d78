from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0003_provisioning')]

    initial = False

    operations = [
        ops.CreateModel(
            name='SchoolClass',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('year', fields.CharField(max_length=16)),
                ('name', fields.CharField(max_length=32)),
                ('school', fields.CharField(default='', max_length=300)),
                ('state', fields.CharField(default='signing', max_length=16)),
                ('confirmed_by', fields.CharField(default='', max_length=200)),
                ('confirmed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'school_class', 'app': 'models', 'unique_together': (('year', 'name'),), 'pk_attr': 'id', 'table_description': 'A class of a school year, with its homeroom teacher and signing deadlines.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SchoolRecord',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('klass', fields.ForeignKeyField('models.SchoolClass', source_field='klass_id', db_constraint=True, to_field='id', related_name='records', on_delete=OnDelete.CASCADE)),
                ('student_code', fields.CharField(max_length=40)),
                ('student_name', fields.CharField(max_length=200)),
                ('state', fields.CharField(default='signing', db_index=True, max_length=16)),
                ('stage', fields.IntField(default=1)),
                ('original', fields.BinaryField()),
                ('pdf', fields.BinaryField()),
                ('revision', fields.IntField(default=0)),
                ('version', fields.IntField(default=0)),
                ('held_by', fields.BigIntField(null=True)),
                ('signatures', fields.IntField(default=0)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'school_record', 'app': 'models', 'unique_together': (('klass', 'student_code'),), 'pk_attr': 'id', 'table_description': "One student's record PDF and where its signing stands. `pdf` is the current file."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RecordReturn',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('record', fields.ForeignKeyField('models.SchoolRecord', source_field='record_id', db_constraint=True, to_field='id', related_name='returns', on_delete=OnDelete.CASCADE)),
                ('actor', fields.CharField(max_length=200)),
                ('reason', fields.TextField(unique=False)),
                ('state', fields.CharField(default='open', max_length=16)),
                ('decided_by', fields.CharField(default='', max_length=200)),
                ('decided_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'record_return', 'app': 'models', 'pk_attr': 'id', 'table_description': 'Báo sai sót: a record sent back with a reason, which the admin approves (cancellation) or refuses.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SignSession',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('teacher_id', fields.BigIntField(null=True, db_index=True)),
                ('credential_id', fields.BigIntField()),
                ('actor', fields.CharField(max_length=200)),
                ('state', fields.CharField(default='queued', db_index=True, max_length=16)),
                ('steps', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('pending', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('detail', fields.TextField(default='', unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'sign_session', 'app': 'models', 'pk_attr': 'id', 'table_description': "One tap on Ký ngay: a signer's batch of steps, and the remote confirmation it may be waiting for."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SignatureStep',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('record', fields.ForeignKeyField('models.SchoolRecord', source_field='record_id', db_constraint=True, to_field='id', related_name='steps', on_delete=OnDelete.CASCADE)),
                ('stage', fields.IntField()),
                ('field', fields.CharField(max_length=64)),
                ('teacher_id', fields.BigIntField(null=True, db_index=True)),
                ('state', fields.CharField(default='waiting', db_index=True, max_length=16)),
                ('opened_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('deadline', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('notified_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('reminded_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('escalated_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('signed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('signed_by', fields.CharField(default='', max_length=300)),
                ('session_id', fields.BigIntField(null=True)),
                ('prepared', fields.BinaryField(null=True)),
            ],
            options={'table': 'signature_step', 'app': 'models', 'unique_together': (('record', 'field'),), 'pk_attr': 'id', 'table_description': 'One signature a record needs: a field, its stage, who signs it, and whether it is done.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Teacher',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('code', fields.CharField(unique=True, max_length=40)),
                ('name', fields.CharField(max_length=200)),
                ('email', fields.CharField(default='', db_index=True, max_length=320)),
                ('staff_id', fields.BigIntField(null=True, db_index=True)),
                ('notify_via', fields.CharField(default='', max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'teacher', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A person who signs records: subject and homeroom teachers, leadership. `staff` is their chat identity.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ClassSigner',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('klass', fields.ForeignKeyField('models.SchoolClass', source_field='klass_id', db_constraint=True, to_field='id', related_name='signers', on_delete=OnDelete.CASCADE)),
                ('teacher', fields.ForeignKeyField('models.Teacher', source_field='teacher_id', db_constraint=True, to_field='id', related_name='classes', on_delete=OnDelete.RESTRICT)),
                ('stage', fields.IntField()),
                ('subjects', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('position', fields.IntField(default=0)),
            ],
            options={'table': 'class_signer', 'app': 'models', 'unique_together': (('klass', 'teacher', 'stage'),), 'pk_attr': 'id', 'table_description': "Who signs a class's records at which stage (subject teachers with their subjects, homeroom, leadership)."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SignerCredential',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('teacher', fields.ForeignKeyField('models.Teacher', source_field='teacher_id', null=True, db_constraint=True, to_field='id', related_name='credentials', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharField(max_length=16)),
                ('label', fields.CharField(default='', max_length=200)),
                ('config', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('certificate', fields.BinaryField(null=True)),
                ('subject_name', fields.CharField(default='', max_length=300)),
                ('not_after', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('state', fields.CharField(default='pending', max_length=16)),
                ('decided_by', fields.CharField(default='', max_length=200)),
                ('decided_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'signer_credential', 'app': 'models', 'pk_attr': 'id', 'table_description': "A signing credential a teacher registered (or the school's organisation credential, teacher null)."},
            bases=['Model'],
        ),
    ]
