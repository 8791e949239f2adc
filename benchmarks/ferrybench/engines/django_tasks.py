"""The Django task framework (issue 4): 2 ``manage.py db_worker`` of django-tasks-db on PostgreSQL
(``BENCH_DT_WORKERS`` changes the number).

Django 6's ``django.tasks`` or, on Django 5.2, the django-tasks backport; the database backend
of django-tasks-db. ``db_worker --interval 0.1 --no-startup-delay --verbosity 0`` (no per-task
log lines, which would cost both sides the same and blur the difference), ``CONN_MAX_AGE = 60``
(db_worker calls ``close_old_connections()`` around every task: with 0 it would reconnect for
each). Raw: ``noop.enqueue()``, a task that does nothing; done when N results are
``SUCCESSFUL``. Ours: task-ferry-django-tasks on the same backend; done when N jobs are
``finished``. The raw side's counting pass counts the framework's own statements (poll,
claim, result), so the two sides' counts compare; idle polls are left out.
"""

from __future__ import annotations

import os
import sys

from ferrybench.engine import Engine, base_settings

WORKERS = int(os.environ.get("BENCH_DT_WORKERS", "2"))
RESULTS = "django_tasks_database_dbtaskresult"


class DjangoTasks(Engine):
    name = "django-tasks"
    sides = ("raw", "ours", "floor")
    # The engine needs no Redis; the counting pass adds its counts there (keys ``bench:count:*``
    # of the Redis benchmark's DB, which is not flushed for this engine).
    redis_url = "redis://127.0.0.1:6379/12"
    flush = False
    queue_in_database = True
    title = f"django-tasks-db db_worker x{WORKERS}, PostgreSQL"
    options = {"BENCH_DT_WORKERS": "workers"}

    def uses_django(self, side: str) -> bool:
        return True

    def settings(self, side: str) -> dict:
        import django

        s = base_settings(self, side)
        apps = s["INSTALLED_APPS"]
        apps[apps.index("task_ferry")] = "django_tasks_db"
        if django.VERSION < (6, 0):
            apps.insert(0, "django_tasks")
        if side != "raw":
            apps.insert(-1, "task_ferry")
            s["TASK_FERRY"] = {"EXECUTOR": "django_tasks", "PROGRESS_STORE": "database"}
        s["DATABASES"]["default"]["CONN_MAX_AGE"] = 60
        s["TASKS"] = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": []}}
        return s

    def worker_commands(self, side: str, counting: bool) -> list[list[str]]:
        return [[sys.executable, "-m", "ferrybench.engines.django_tasks_worker", f"bench-{os.getpid()}-{i}"]
                for i in range(1 if counting else WORKERS)]  # fmt: skip

    def ready(self, client, procs) -> bool:
        import time

        time.sleep(3)  # db_worker says nowhere that it polls; it starts within a second or two
        return True

    def reset(self, client, kind: str) -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {RESULTS}")

    def send_raw(self, n: int) -> None:
        from ferrybench.engines.django_tasks_tasks import noop

        for _ in range(n):
            noop.enqueue()

    def send_floor(self, ids: list[int]) -> None:
        from ferrybench.engines.django_tasks_tasks import floor

        for job_id in ids:
            floor.enqueue(job_id)

    def expect(self, client, kind: str, n: int):
        from django_tasks_db.models import DBTaskResult

        if kind == "raw":
            done = DBTaskResult.objects.filter(status="SUCCESSFUL").count
        else:
            from task_ferry.models import Job

            done = Job.objects.filter(state="finished").count
        return lambda: done() >= n


ENGINE = DjangoTasks()
