"""The raw side's task: one that does nothing."""

import django

if django.VERSION >= (6, 0):
    from django.tasks import task
else:
    from django_tasks import task


@task()
def noop() -> None:
    return None


@task()
def floor(job_id: int) -> None:
    """The floor side's task (:mod:`ferrybench.floor`)."""
    from ferrybench.floor import run

    run(job_id)
