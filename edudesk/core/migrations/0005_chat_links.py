from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0004_records')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ActionToken',
            fields=[
                ('token_hash', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('staff_id', fields.BigIntField(db_index=True)),
                ('action', fields.CharField(max_length=32)),
                ('target', fields.BigIntField()),
                ('version', fields.IntField(default=0)),
                ('arg', fields.IntField(default=0)),
                ('surface', fields.CharField(max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'action_token', 'app': 'models', 'pk_attr': 'token_hash', 'table_description': 'A one-time action link or button payload, bound to one person and one action (only its hash kept).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='LinkCode',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('code_hash', fields.CharField(db_index=True, max_length=64)),
                ('staff_id', fields.BigIntField(db_index=True)),
                ('surface', fields.CharField(max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'link_code', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A one-time code that links a chat account (Zalo, Telegram) to a staff member (only its hash kept).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='OAuthToken',
            fields=[
                ('name', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('access_sealed', fields.TextField(unique=False)),
                ('refresh_sealed', fields.TextField(unique=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('generation', fields.IntField(default=0)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'oauth_token', 'app': 'models', 'pk_attr': 'name', 'table_description': 'An OAuth access/refresh token pair (sealed with the secret key), one row per provider account.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Staff',
            name='notify_via',
            field=fields.CharField(default='', max_length=16),
        ),
        ops.AddField(
            model_name='Staff',
            name='zalo_id',
            field=fields.CharField(null=True, unique=True, max_length=64),
        ),
    ]
