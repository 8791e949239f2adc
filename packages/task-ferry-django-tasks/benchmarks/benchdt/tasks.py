"""The raw side of the benchmark: a task framework task that does nothing."""

from task_ferry_django_tasks.compat import task


@task()
def noop() -> None:
    return None
