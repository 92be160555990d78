"""The archive of reports made (BM03), and the indexes the report's aggregate queries read through."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

INDEXES = [
    # the period's requests
    "CREATE INDEX IF NOT EXISTS idx_request_received_at ON request (received_at)",
    # a request's decisions, read without touching the table
    "CREATE INDEX IF NOT EXISTS idx_audit_event_request_action_at ON audit_event (request_id, action, at)",
    # the decisions of a period, day by day
    "CREATE INDEX IF NOT EXISTS idx_audit_event_action_at ON audit_event (action, at)",
    # the directory changes of a period, counted from the index alone
    "CREATE INDEX IF NOT EXISTS idx_account_log_at_action_ok ON account_log (at, action, ok)",
]
DROP_INDEXES = [f"DROP INDEX IF EXISTS {sql.split()[5]}" for sql in INDEXES]


class Migration(migrations.Migration):
    dependencies = [('models', '0007_wave3_senders_rows')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ReportArchive',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('kind', fields.CharField(default='bm03', max_length=16)),
                ('period_start', fields.DateField()),
                ('period_end', fields.DateField()),
                ('unit', fields.CharField(default='', max_length=300)),
                ('lang', fields.CharField(default='vi', max_length=8)),
                ('fmt', fields.CharField(max_length=8)),
                ('filename', fields.CharField(max_length=300)),
                ('content', fields.BinaryField()),
                ('size', fields.IntField()),
                ('sha256', fields.CharField(max_length=64)),
                ('made_by', fields.CharField(max_length=200)),
                ('made_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('scheduled', fields.BooleanField(default=False)),
            ],
            options={'table': 'report_archive', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A report made (by a person or the monthly schedule): its period, its file and who made it.'},
            bases=['Model'],
        ),
        # Indexes only the reports need (core/reports/bm03.py); kept out of the models' Meta so that the
        # request and account tables' modules stay as they are. Same SQL on SQLite and PostgreSQL.
        ops.RunSQL(INDEXES, reverse_sql=DROP_INDEXES),
    ]
