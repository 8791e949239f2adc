"""The ``django_tasks`` executor: runs task-ferry jobs through Django's task framework.

``django.tasks`` on Django 6, the ``django-tasks`` backport on Django 5.2 (see
:mod:`task_ferry_django_tasks.compat`), with whatever backend ``TASKS`` names:
the immediate backend, django-tasks-db's ``DatabaseBackend`` and its
``db_worker``, or any other.

Settings::

    TASK_FERRY = {"EXECUTOR": {"BACKEND": "django_tasks", "OPTIONS": {"BACKEND_ALIAS": "default"}}}

OPTIONS: ``BACKEND_ALIAS``, the ``TASKS`` alias jobs are enqueued on (default
``"default"``). Anything else is a ``ValueError``.

Capabilities follow the configured backend, so they are instance attributes set
when the executor is built (core rebuilds it when ``TASK_FERRY`` changes, and
this module also drops it when ``TASKS`` changes):

============================  ==================  ===================================
flag                          immediate backend   any other backend (e.g. db_worker)
============================  ==================  ===================================
``supports_defer_on_commit``  False: runs inline  True
``out_of_process``            False               True
``supports_queues``           False (ignored)     True (``QUEUES`` must accept it)
``supports_priority``         False (ignored)     the backend's ``supports_priority``
``supports_delay``            False (ignored)     the backend's ``supports_defer``
``supports_revoke``           False               False: the framework has no revoke
``supports_kill``             False               False
============================  ==================  ===================================

With django-tasks-db's ``DatabaseBackend`` the executor's ``queue_database`` is the
database its task rows are written to. For jobs in that database core enqueues the
task inside the job's own transaction instead of after its commit: the job and its
task commit together (a crash between the two can no longer leave a pending job with
no task), in one commit instead of three (the job's, the task's, and the one that
records the task's id on the job).

A job cancelled while pending never runs its body without a revoke: the
runner's claim is a compare-and-set from ``pending``, so the task, when a
worker gets to it, finds the job cancelled and returns ``"skipped"``.
"""

from __future__ import annotations

from typing import Any

from django.core.checks import Error
from django.core.signals import setting_changed
from django.db import router

from task_ferry.executors import BaseExecutor
from task_ferry.plugins import checked_options
from task_ferry.protocols import Dispatch

from . import compat

OPTIONS = frozenset({"BACKEND_ALIAS"})


class DjangoTasksExecutor(BaseExecutor):
    # Class values are what an unresolvable backend gets: dispatch after commit, where a
    # refusal is recorded on the job as a failed dispatch instead of breaking the caller's transaction.
    supports_defer_on_commit = True
    out_of_process = True

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(checked_options(options, sorted(OPTIONS), "django_tasks executor"))
        alias = self.options.get("BACKEND_ALIAS", compat.DEFAULT_TASK_BACKEND_ALIAS)
        if not isinstance(alias, str) or not alias:
            raise ValueError(f"BACKEND_ALIAS must be the name of a TASKS backend, got {alias!r}.")
        self.backend_alias = alias
        #: Why the backend cannot be used, if it cannot: reported by check(), raised by submit().
        self.backend_error: Exception | None = None
        #: The database the backend keeps its tasks in, if it is a database backend (see above).
        self.queue_database: str | None = None
        try:
            backend = compat.task_backends[alias]
            from .tasks import run_ferry_job, valid_queue

            self.task = run_ferry_job.using(backend=alias, queue_name=valid_queue(backend))
        except Exception as exc:
            self.backend_error = exc
            return
        self.backend = backend
        inline = isinstance(backend, compat.INLINE_BACKENDS)
        self.supports_defer_on_commit = not inline
        self.out_of_process = not inline
        self.supports_queues = not inline
        self.supports_priority = not inline and bool(backend.supports_priority)
        self.supports_delay = not inline and bool(backend.supports_defer)
        if isinstance(backend, compat.DATABASE_BACKENDS):
            self.queue_database = _task_database()

    def submit(self, dispatch: Dispatch) -> str | None:
        """Enqueue ``run_ferry_job`` for the dispatch; return the task result's id (the framework
        picks its own ids, so core records this one on the job)."""
        if self.backend_error is not None:
            raise self.backend_error
        changes: dict[str, Any] = {}
        if self.supports_queues:
            changes["queue_name"] = dispatch.queue
        if self.supports_priority:
            changes["priority"] = dispatch.priority
        if self.supports_delay and dispatch.run_after is not None:
            changes["run_after"] = dispatch.run_after
        task = self.task.using(**changes) if changes else self.task
        return str(task.enqueue(dispatch.job_id, dispatch.job_type, dispatch.task_id).id)

    def check(self) -> list:
        if self.backend_error is not None:
            return [
                Error(
                    f"The django_tasks executor cannot use the TASKS backend {self.backend_alias!r}: "
                    f"{type(self.backend_error).__name__}: {self.backend_error}",
                    hint=f'Define TASKS["{self.backend_alias}"], or set the executor\'s OPTIONS "BACKEND_ALIAS" '
                    f"to one of the TASKS aliases.",
                    id="task_ferry_django_tasks.E001",
                )
            ]
        if not self.supports_queues or not self.backend.queues:
            return []
        from task_ferry.registry import job_type_registry

        errors = []
        for job_type in job_type_registry.all():
            queue = job_type.get_queue()
            if queue not in self.backend.queues:
                errors.append(
                    Error(
                        f"Job type {job_type.type!r} runs on queue {queue!r}, which the TASKS backend "
                        f"{self.backend_alias!r} does not accept (QUEUES: {sorted(self.backend.queues)}); "
                        f"its jobs would fail at dispatch.",
                        hint=f'Add {queue!r} to TASKS["{self.backend_alias}"]["QUEUES"] (and to a worker\'s '
                        f"--queue-name), or set the type's queue to one it accepts.",
                        id="task_ferry_django_tasks.E002",
                    )
                )
        return errors


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    # The capabilities above come from TASKS; core only rebuilds executors when TASK_FERRY changes.
    if setting == "TASKS":
        from task_ferry.conf import reset

        reset()


setting_changed.connect(_on_setting_changed, dispatch_uid="task_ferry_django_tasks.setting_changed")


def _task_database() -> str | None:
    """Where django-tasks-db writes its task rows (None if its app is not installed: the
    backend cannot enqueue then, and core keeps to enqueueing on commit)."""
    try:
        from django_tasks_db.models import DBTaskResult
    except Exception:
        return None
    return router.db_for_write(DBTaskResult)
