from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0006_retention')]

    initial = False

    operations = [
        ops.CreateModel(
            name='SenderConfirmation',
            fields=[
                ('token_hash', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('request_id', fields.BigIntField(db_index=True)),
                ('address', fields.CharField(max_length=320)),
                ('person_id', fields.CharField(default='', max_length=64)),
                ('sent_by', fields.CharField(default='', max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('opened_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'sender_confirmation', 'app': 'models', 'pk_attr': 'token_hash', 'table_description': 'A link mailed to the address the registry holds for a person, proving an unverified request is theirs.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='RegistryEntry',
            name='personal_email',
            field=fields.CharField(default='', max_length=320),
        ),
        ops.AddField(
            model_name='Request',
            name='sender_verified',
            field=fields.BooleanField(null=True),
        ),
        ops.AddField(
            model_name='RequestPerson',
            name='approved_by',
            field=fields.CharField(default='', max_length=200),
        ),
        ops.AddField(
            model_name='RequestPerson',
            name='name_source',
            field=fields.CharField(default='', max_length=16),
        ),
    ]
