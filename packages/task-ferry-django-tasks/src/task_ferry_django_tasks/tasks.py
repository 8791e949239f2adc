"""The one task task-ferry enqueues, and what the task framework tells us about it.

``task_ferry_django_tasks.tasks.run_ferry_job(job_id, job_type, task_id)`` is
the task's stable path (workers import it by that name, so it never moves). Its
body is ``task_ferry.runner.run_job(job_id, job_type)``; the task's return value
is the runner's outcome (``"finished"``, ``"failed"``, ``"cancelled"`` or
``"skipped"``), so a job's own failure is a *successful* task that returned
``"failed"``: the job row, not the task result, is the record.

``task_id`` is the id core stored on the job when it dispatched it, so a task
result can always be matched to the dispatch it came from, even before core has
recorded the framework's own result id.

What the framework's signals are used for
-----------------------------------------
Only ``task_finished`` with status ``FAILED`` matters: the task itself failed
at the framework level, which the runner could not record because it never
returned. That happens when the worker is stopped mid-job (``db_worker``'s
second SIGTERM/SIGINT raises ``SystemExit`` inside the job; the worker records
the task ``FAILED``), or when the runner's own database work raised (a lost
connection, a locked SQLite file). Without this receiver such a job would stay
``pending`` or ``started`` forever; with it the job is recorded ``failed``
(compare-and-set from ``pending``/``started``, and only if the failed task is
the job's current dispatch), its store entry is cleared, ``on_error`` is called
and ``job_failed`` is sent, as the runner does for a job that raised.

``task_enqueued`` and ``task_started`` are not used: the runner claims the job
itself, atomically, when the body starts. The receiver is connected to the
``task_finished`` of every framework importable here (``django.tasks`` and the
``django_tasks`` backport), because the worker sends the signals of the
framework its backend belongs to.
"""

from __future__ import annotations

import logging

from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from .compat import DEFAULT_TASK_BACKEND_ALIAS, DEFAULT_TASK_QUEUE_NAME, TASK_FINISHED_SIGNALS, task, task_backends

logger = logging.getLogger("task_ferry_django_tasks")


class TaskFrameworkError(Exception):
    """Handed to ``on_error`` and ``job_failed`` when the job's task failed in the task framework
    (see the module docstring); its message is the framework's record of the failure."""


def valid_queue(backend) -> str:
    """A queue ``backend`` accepts: the framework's default queue unless its ``QUEUES`` leave it out."""
    queues = backend.queues
    return DEFAULT_TASK_QUEUE_NAME if not queues or DEFAULT_TASK_QUEUE_NAME in queues else sorted(queues)[0]


def _import_binding() -> dict:
    # The framework validates a task against its backend when it is built, here at import. Every use
    # re-binds it with .using(backend=..., queue_name=...) (the executor, and db_worker from the stored
    # row), so this binding only has to be valid: the default alias and queue unless TASKS leaves them out.
    aliases = list(task_backends.settings)
    if not aliases:
        raise ImproperlyConfigured("settings.TASKS defines no task backend; task-ferry-django-tasks needs one.")
    alias = DEFAULT_TASK_BACKEND_ALIAS if DEFAULT_TASK_BACKEND_ALIAS in aliases else aliases[0]
    return {"backend": alias, "queue_name": valid_queue(task_backends[alias])}


@task(**_import_binding())
def run_ferry_job(job_id: int, job_type: str = "", task_id: str = "") -> str:
    from task_ferry import runner

    return runner.run_job(job_id, job_type or None).outcome


#: The path workers import the task by.
TASK_PATH = run_ferry_job.module_path


def _on_task_finished(sender, task_result, **kwargs) -> None:
    if str(task_result.status) != "FAILED" or task_result.task.module_path != TASK_PATH:
        return
    try:
        record_task_failure(task_result)
    except Exception:
        # The worker sends this signal from its own error handling: never let a receiver take it down.
        logger.exception("task-ferry: could not record the failed task %s on its job.", task_result.id)


def record_task_failure(task_result) -> bool:
    """Record the job of a ``FAILED`` ferry task result as failed, if the job is still
    pending or running (``JOB_STATES_PENDING_OR_RUNNING``) under that dispatch. Returns whether it was."""
    from task_ferry import signals
    from task_ferry.conf import get_progress_store
    from task_ferry.models import JOB_FAILED, JOB_STATES_PENDING_OR_RUNNING, Job
    from task_ferry.registry import job_type_registry
    from task_ferry.runner import load_job

    args, kwargs = list(task_result.args), dict(task_result.kwargs)
    names = ("job_id", "job_type", "task_id")
    values = {name: kwargs.get(name, args[i] if i < len(args) else "") for i, name in enumerate(names)}
    error = task_result.errors[-1] if task_result.errors else None
    lines = (error.traceback or "").strip().splitlines() if error else []
    what = lines[-1] if lines else (error.exception_class_path if error else "no error recorded")
    message = f"task {task_result.id} failed in the task framework: {what}"
    dispatches = {str(task_result.id)} | ({str(values["task_id"])} if values["task_id"] else set())
    moved = Job.objects.filter(pk=values["job_id"], executor_task_id__in=dispatches).transition(
        JOB_STATES_PENDING_OR_RUNNING,
        JOB_FAILED,
        error=message,
        human_readable_error="The job stopped before it could record an outcome (its worker task failed); "
        "try it again.",
        finished_at=timezone.now(),
    )
    if not moved:
        return False
    logger.error("task-ferry: job %s failed: %s", values["job_id"], message)
    try:
        get_progress_store().clear(values["job_id"])
    except Exception as exc:
        logger.warning("task-ferry: could not clear the progress of job %s: %s", values["job_id"], exc)
    job = load_job(values["job_id"], values["job_type"] or None)
    job_type = job_type_registry.get_by_model(job)
    exc = TaskFrameworkError(message)
    try:
        job_type.on_error(job, exc)
    except Exception:
        logger.exception("task-ferry: on_error raised for job %s; the job stays failed.", job.pk)
    signals.send(signals.job_failed, job_type, job, exc=exc)
    return True


for _signal in TASK_FINISHED_SIGNALS:
    _signal.connect(_on_task_finished, dispatch_uid="task_ferry_django_tasks.task_finished")
