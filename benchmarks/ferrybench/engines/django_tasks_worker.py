"""``manage.py db_worker`` in a process that, with ``BENCH_COUNT``, counts what each task run
costs the database: the poll that found it, the claim, the task, the result."""

import os
import sys

import django

django.setup()

from django.core.management import call_command  # noqa: E402

if os.environ.get("BENCH_COUNT"):
    from django_tasks_db.management.commands import db_worker
    from django_tasks_db.models import DBTaskResultQuerySet

    from ferrybench import counting
    from ferrybench.engines.django_tasks import ENGINE

    counting.install()
    get_locked, run_task = DBTaskResultQuerySet.get_locked, db_worker.Worker.run_task

    def counted_get_locked(self):
        found = get_locked(self)
        if found is None:  # an idle poll: part of no task run
            counting.mark()
        return found

    def counted_run_task(self, db_task_result):
        try:
            return run_task(self, db_task_result)
        finally:
            counting.report(ENGINE.redis_url)

    DBTaskResultQuerySet.get_locked = counted_get_locked
    db_worker.Worker.run_task = counted_run_task

call_command(
    "db_worker", "--queue-name", "default", "--interval", "0.1", "--no-startup-delay", "--no-reload",
    "--worker-id", sys.argv[1], "--verbosity", "0",
)  # fmt: skip
