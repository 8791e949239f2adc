# New in task-ferry-core 1.0: lifecycle fields on Job, and the database progress store table.

import django.core.serializers.json
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('task_ferry', '0002_add_ingestion_job'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='ProgressRecord',
            fields=[
                ('job_id', models.BigIntegerField(primary_key=True, serialize=False)),
                ('state', models.CharField(max_length=32)),
                ('percentage', models.SmallIntegerField(default=0)),
                ('label', models.CharField(blank=True, default='', max_length=255)),
                ('cancel_requested', models.BooleanField(default=False)),
                ('updated_at', models.FloatField(default=0)),
            ],
            options={
                'db_table': 'task_ferry_progress',
            },
        ),
        migrations.AddField(
            model_name='job',
            name='attempts',
            field=models.PositiveIntegerField(default=0, help_text='How many times a worker has started this job.'),
        ),
        migrations.AddField(
            model_name='job',
            name='executor_task_id',
            field=models.CharField(blank=True, default='', help_text="The engine's id of the run.", max_length=255),
        ),
        migrations.AddField(
            model_name='job',
            name='finished_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='job',
            name='priority',
            field=models.SmallIntegerField(default=0, help_text='-100..100; higher runs sooner where the engine allows.'),
        ),
        migrations.AddField(
            model_name='job',
            name='queue',
            field=models.CharField(default='default', help_text='Queue the job was dispatched to.', max_length=100),
        ),
        migrations.AddField(
            model_name='job',
            name='result',
            field=models.JSONField(blank=True, encoder=django.core.serializers.json.DjangoJSONEncoder, help_text='Return value of run().', null=True),
        ),
        migrations.AddField(
            model_name='job',
            name='run_after',
            field=models.DateTimeField(blank=True, help_text='Do not start before this time.', null=True),
        ),
        migrations.AddField(
            model_name='job',
            name='started_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='job',
            name='type',
            field=models.CharField(blank=True, db_index=True, default='', help_text='Registered JobType.type of this job.', max_length=100),
        ),
        migrations.AddIndex(
            model_name='job',
            index=models.Index(fields=['state', 'queue'], name='task_ferry_state_queue_idx'),
        ),
        migrations.AddIndex(
            model_name='job',
            index=models.Index(fields=['user', 'type', 'state'], name='task_ferry_user_type_idx'),
        ),
    ]
