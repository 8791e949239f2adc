"""The raw side's task: one that does nothing."""

import django

if django.VERSION >= (6, 0):
    from django.tasks import task
else:
    from django_tasks import task


@task()
def noop() -> None:
    return None
