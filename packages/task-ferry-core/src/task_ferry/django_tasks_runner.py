"""0.1.1's django-tasks entry point, kept so tasks queued before an upgrade still run.

django-task-ferry 0.1.1 enqueued ``task_ferry.django_tasks_runner.run_job_via_django_tasks(job_id)``;
a database task backend stores that path in each queued row and ``db_worker``
imports it by name when it gets to the row. That name resolves to the
``task-ferry-django-tasks`` plugin's one task, whose body runs the job through
the runner like any other (``job_type`` is read from the row).

Imported only by a worker that meets such a row: core itself never imports it.
"""

from __future__ import annotations


def __getattr__(name: str):
    if name == "run_job_via_django_tasks":
        try:
            from task_ferry_django_tasks.tasks import run_ferry_job
        except ImportError as exc:
            raise ImportError(
                "A task queued by django-task-ferry 0.1.1 needs the django_tasks executor plugin: "
                "pip install task-ferry-django-tasks (and set TASK_FERRY['EXECUTOR'] = 'django_tasks')."
            ) from exc
        return run_ferry_job
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
