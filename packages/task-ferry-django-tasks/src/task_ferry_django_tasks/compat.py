"""Which task framework this process uses: Django 6's built-in ``django.tasks``,
else the ``django-tasks`` backport (Django 5.2).

The rule is django-tasks-db's own (it prefers ``django.tasks`` whenever Django
has it), so the ferry task is an instance of the ``Task`` class its
``db_worker`` accepts. If neither is importable, importing this module (and so
the executor) raises ``ImportError`` with the ``pip install`` line that fixes it.

Signals and the immediate backend are collected from *both* frameworks where
both are importable (Django 6 with the backport still installed): a backend
class of the backport, configured in ``TASKS`` on Django 6, sends the
backport's signals.
"""

from __future__ import annotations

from importlib import import_module

import django

try:
    import django.tasks as framework
    from django.tasks import DEFAULT_TASK_BACKEND_ALIAS, DEFAULT_TASK_QUEUE_NAME, task, task_backends
except ImportError:
    try:
        import django_tasks as framework
        from django_tasks import DEFAULT_TASK_BACKEND_ALIAS, DEFAULT_TASK_QUEUE_NAME, task, task_backends
    except ImportError as exc:
        raise ImportError(
            f"task-ferry-django-tasks needs Django's task framework: Django 6 has it built in (django.tasks); "
            f"on Django {django.get_version()} install the backport: "
            f'pip install "task-ferry-django-tasks[backport]" (the django-tasks package).'
        ) from exc

#: ``"django.tasks"`` or ``"django_tasks"``: the framework this process uses.
FRAMEWORK = framework.__name__


def _both(attr: str, *modules: str) -> tuple:
    """``attr`` of each module that imports here (a framework that is not installed, or a
    backport that does not load on this Django, is left out)."""
    found = []
    for module in modules:
        try:
            found.append(getattr(import_module(module), attr))
        except Exception:
            continue
    return tuple(found)


#: ``task_finished`` of every task framework importable here.
TASK_FINISHED_SIGNALS = _both("task_finished", "django.tasks.signals", "django_tasks.signals")

#: Backends that run the task inline, inside ``enqueue()``: the ``ImmediateBackend`` of either framework.
INLINE_BACKENDS = _both("ImmediateBackend", "django.tasks.backends.immediate", "django_tasks.backends.immediate")

#: Backends that keep their queue in one of the project's databases: django-tasks-db's ``DatabaseBackend``.
DATABASE_BACKENDS = _both("DatabaseBackend", "django_tasks_db.backend")

__all__ = [
    "DATABASE_BACKENDS",
    "DEFAULT_TASK_BACKEND_ALIAS",
    "DEFAULT_TASK_QUEUE_NAME",
    "FRAMEWORK",
    "INLINE_BACKENDS",
    "TASK_FINISHED_SIGNALS",
    "task",
    "task_backends",
]
