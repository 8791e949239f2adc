"""A plain task of the test project: ``db_worker`` readiness probes (see ``conftest.db_worker``)."""

from task_ferry_django_tasks.compat import task


@task()
def ping() -> str:
    return "pong"
