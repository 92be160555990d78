from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ChatCard',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('surface', fields.CharField(max_length=16)),
                ('chat', fields.CharField(max_length=64)),
                ('request_id', fields.BigIntField(db_index=True)),
                ('message_ref', fields.CharField(max_length=64)),
                ('audience', fields.CharField(max_length=16)),
                ('version', fields.IntField(default=0)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'chat_card', 'app': 'models', 'unique_together': (('surface', 'chat', 'request_id'),), 'pk_attr': 'id', 'table_description': "Where a request's card was posted in a chat, so every later action edits it in place."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='LoginToken',
            fields=[
                ('token_hash', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('staff_id', fields.BigIntField()),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'login_token', 'app': 'models', 'pk_attr': 'token_hash', 'table_description': 'A one-time sign-in link for the web console (only its hash is stored).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PendingSecret',
            fields=[
                ('key', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=200)),
                ('request_id', fields.BigIntField(db_index=True)),
                ('sealed', fields.TextField(unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'pending_secret', 'app': 'models', 'pk_attr': 'key', 'table_description': 'A generated password on its way to the requester: encrypted at rest, deleted once the mail is sent.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Staff',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=200)),
                ('email', fields.CharField(default='', db_index=True, max_length=320)),
                ('roles', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('telegram_id', fields.BigIntField(null=True, unique=True)),
                ('active', fields.BooleanField(default=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'staff', 'app': 'models', 'pk_attr': 'id', 'table_description': 'An office member who acts in chat or in the web console, with roles (office, technical, head, admin).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='WebSession',
            fields=[
                ('token_hash', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('staff_id', fields.BigIntField(db_index=True)),
                ('csrf', fields.CharField(max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'web_session', 'app': 'models', 'pk_attr': 'token_hash', 'table_description': 'A signed-in web console session (cookie value hashed) with its CSRF token.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Account',
            name='password_hash',
            field=fields.CharField(default='', max_length=300),
        ),
        ops.AddField(
            model_name='Account',
            name='request_id',
            field=fields.BigIntField(null=True),
        ),
        ops.AddField(
            model_name='Account',
            name='updated_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Request',
            name='assignee_id',
            field=fields.BigIntField(null=True, db_index=True),
        ),
        ops.AddField(
            model_name='Request',
            name='escalated_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Request',
            name='reminded_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Request',
            name='version',
            field=fields.IntField(default=0),
        ),
    ]
