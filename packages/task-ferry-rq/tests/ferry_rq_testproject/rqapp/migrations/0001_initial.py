import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('task_ferry', '0001_initial'),
    ]

    operations = [
        migrations.CreateModel(
            name='ProbeJob',
            fields=[
                ('job_ptr', models.OneToOneField(auto_created=True, on_delete=django.db.models.deletion.CASCADE, parent_link=True, primary_key=True, serialize=False, to='task_ferry.job')),
                ('seconds', models.FloatField(default=0.0)),
                ('pid', models.IntegerField(null=True)),
                ('rq_job_id', models.CharField(blank=True, default='', max_length=100)),
                ('rq_queue', models.CharField(blank=True, default='', max_length=100)),
                ('beats', models.PositiveIntegerField(default=0)),
                ('body_runs', models.PositiveIntegerField(default=0)),
            ],
            bases=('task_ferry.job',),
        ),
    ]
