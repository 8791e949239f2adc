"""A plain task for ``db_worker`` readiness probes (imported only when task-ferry-django-tasks is installed)."""

from task_ferry_django_tasks.compat import task


@task()
def ping() -> str:
    return "pong"
