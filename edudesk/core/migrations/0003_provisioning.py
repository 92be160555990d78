from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0002_chat_ops')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AccountLog',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('action', fields.CharField(max_length=16)),
                ('address', fields.CharField(db_index=True, max_length=320)),
                ('full_name', fields.CharField(default='', max_length=300)),
                ('person_id', fields.CharField(default='', max_length=64)),
                ('backend', fields.CharField(max_length=32)),
                ('request_id', fields.BigIntField(null=True, db_index=True)),
                ('approved_by', fields.CharField(default='', max_length=200)),
                ('executed_by', fields.CharField(default='', max_length=200)),
                ('ok', fields.BooleanField(default=True)),
                ('answer', fields.CharField(default='', max_length=500)),
            ],
            options={'table': 'account_log', 'app': 'models', 'pk_attr': 'id', 'table_description': "The account log (the procedures' CreateEmail log): every change made in a directory. Never a password."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PasswordLink',
            fields=[
                ('token_hash', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('request_id', fields.BigIntField(db_index=True)),
                ('recipient', fields.CharField(max_length=320)),
                ('accounts', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('is_list', fields.BooleanField(default=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('opened_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'password_link', 'app': 'models', 'pk_attr': 'token_hash', 'table_description': 'A one-time link to the web console that shows generated passwords once, then expires.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Account',
            name='backend',
            field=fields.CharField(default='local', max_length=32),
        ),
        ops.AddField(
            model_name='Account',
            name='delete_after',
            field=fields.DatetimeField(null=True, db_index=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Account',
            name='key',
            field=fields.CharField(null=True, unique=True, max_length=200),
        ),
        ops.AddField(
            model_name='Account',
            name='suspended_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='RequestPerson',
            name='final_address',
            field=fields.CharField(default='', max_length=320),
        ),
        ops.AddField(
            model_name='RequestPerson',
            name='outcome',
            field=fields.CharField(default='', max_length=16),
        ),
        ops.AddField(
            model_name='RequestPerson',
            name='outcome_detail',
            field=fields.CharField(default='', max_length=500),
        ),
        ops.AddField(
            model_name='RequestPerson',
            name='result',
            field=fields.CharField(default='', max_length=16),
        ),
    ]
