"""What Celery workers run: the task ``task_ferry.run_job`` and the control command ``task_ferry_kill``.

Imported by this package's ``AppConfig.ready()``, so every process that sets
up Django with ``"task_ferry_celery"`` in ``INSTALLED_APPS`` (a worker through
Celery's Django fix-up, too) has both registered.

Delivery semantics. The task is ``acks_late``: the broker keeps the message
until the task returns, so a worker lost between receiving a job and claiming
it does not lose the job; the message is delivered again. Every delivery goes
through :func:`task_ferry.runner.run_job`, whose claim is a compare-and-set
from ``pending``: a second delivery of a job that is running, has ended or
was cancelled does nothing. So redelivery (``acks_late``, a lost worker, the
Redis visibility timeout, a message sent twice) never runs a body twice at the
same time and never brings an ended job back. A job whose worker process died
mid-run stays ``started``; ``reject_on_worker_lost`` is left False because a
redelivered copy could not run it anyway.

The task never fails in Celery's eyes for the job's own reasons: the runner
records the job's exception on the job. Only an error of the runner's own
database work (the database went away) reaches Celery, which retries the task
with back-off, on a fresh connection; the claim makes the retry safe.
"""

from __future__ import annotations

import signal

from celery import shared_task
from celery.worker import state as worker_state
from celery.worker.control import control_command
from django.db import InterfaceError, OperationalError, close_old_connections

#: The stable task name core's jobs are sent under.
TASK_NAME = "task_ferry.run_job"
#: The worker control command behind ``CeleryExecutor.kill``.
KILL_COMMAND = "task_ferry_kill"


@shared_task(
    name=TASK_NAME,
    acks_late=True,
    ignore_result=True,
    autoretry_for=(InterfaceError, OperationalError),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=10,
)
def run_job(job_id: int, job_type: str | None = None) -> None:
    """Run one job through core's runner; the job's outcome is recorded on the job, not returned."""
    from task_ferry.runner import run_job as run

    try:
        run(job_id, job_type)
    except (InterfaceError, OperationalError):
        # Django keeps a broken connection until someone closes it, and with CELERY_DB_REUSE_MAX
        # Celery does not close it between tasks: drop it, so the retry connects afresh.
        close_old_connections()
        raise


@shared_task(name="task_ferry.tasks.run_async_job", acks_late=True, ignore_result=True)
def run_async_job(job_id: int) -> None:
    """django-task-ferry 0.1.1's task name, so messages queued before an upgrade still run."""
    from task_ferry.runner import run_job as run

    run(job_id)


@control_command(args=[("task_id", str), ("grace", float)], signature="<task_id> <grace>")
def task_ferry_kill(state, task_id: str, grace: float = 10.0, **kwargs):
    """SIGTERM the pool process running ``task_id``; SIGKILL it after ``grace`` seconds
    if it is still running that task. A copy not yet started is revoked."""
    worker_state.revoked.add(task_id)
    running = [r for r in worker_state.active_requests if r.id == task_id and r.time_start and r.worker_pid]
    if not running:
        return {"ok": "not running here"}
    request, pool = running[0], state.consumer.pool
    pid = request.worker_pid
    pool.terminate_job(pid, signal.SIGTERM)

    def escalate() -> None:
        # Still active means the worker has not reaped that process yet: the pid is still its.
        if request in worker_state.active_requests and request.worker_pid == pid:
            pool.terminate_job(pid, signal.SIGKILL)

    state.consumer.timer.call_after(grace, escalate)
    return {"ok": f"SIGTERM sent to {pid}"}
