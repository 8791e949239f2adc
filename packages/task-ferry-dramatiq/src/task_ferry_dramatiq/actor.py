"""The one actor every job runs as: ``task_ferry_run_job(job_id, job_type)``, whose body is core's runner.

It is declared on the project's broker (never on a broker of its own) by
:func:`declare_actor`, the first time a process needs it: the executor when it
sends the first job, the worker entry point (:mod:`task_ferry_dramatiq.worker`)
when a worker process starts.

Actor options, each set only when a middleware of the broker defines it (so a
broker with fewer middleware still accepts the actor):

``retry_when`` (``Retries``)
    The job's own exception never reaches Dramatiq: the runner records it on the
    job and core owns retries. Only a database error of the runner itself (the
    database went away before the claim) fails the message; Dramatiq retries it
    up to :data:`DB_RETRIES` times, 1 s to 60 s apart. Core's claim makes the
    retry safe: a job already claimed is skipped.
``time_limit`` (``TimeLimit``)
    Infinite. Dramatiq's default of 10 minutes would raise an exception
    asynchronously inside a long job, past the runner's bookkeeping, and leave the
    job ``started``; core has its own per-type timeouts.
``max_age`` (``AgeLimit``)
    None: a job's message is never dropped for its age. A delayed job's message is
    as old as its delay, and a dropped message would leave its job ``pending``.
``abortable`` (``Abortable`` of the separate package dramatiq-abort)
    False. An abort would skip or interrupt the runner behind core's back (the job
    row would stay ``pending`` or ``started``); cancel through ``JobHandler.cancel``,
    which works with or without that middleware.
"""

from __future__ import annotations

import threading
from typing import Any

from django.db import InterfaceError, OperationalError, close_old_connections

#: The stable name jobs are sent to; a worker must have this actor declared.
ACTOR_NAME = "task_ferry_run_job"
#: How often a message whose runner hit a database error is retried.
DB_RETRIES = 10

_lock = threading.Lock()


def run_job(job_id: int, job_type: str | None = None) -> None:
    """Run one job through core's runner; the outcome is recorded on the job, not returned."""
    from task_ferry.runner import run_job as run

    # Dramatiq has no request cycle: treat each job as one, so CONN_MAX_AGE is honoured and a
    # connection broken meanwhile (database restart) is dropped instead of failing every later job.
    close_old_connections()
    try:
        run(job_id, job_type)
    finally:
        close_old_connections()


def retry_when(retries: int, exception: BaseException) -> bool:
    """Dramatiq's ``retry_when``: retry a message only for a database error of the runner itself."""
    return retries < DB_RETRIES and isinstance(exception, InterfaceError | OperationalError)


def actor_options(broker) -> dict[str, Any]:
    """The options :data:`ACTOR_NAME` is declared with on ``broker`` (see the module docstring)."""
    known = broker.actor_options
    wanted = {
        "retry_when": retry_when,
        "min_backoff": 1_000,
        "max_backoff": 60_000,
        "time_limit": float("inf"),
        "max_age": None,
        "abortable": False,
    }
    return {name: value for name, value in wanted.items() if name in known}


def declare_actor(broker):
    """The actor on ``broker``, declared on first call (thread-safe); later calls return it.

    Its own queue (where a bare ``actor.send()`` would go, and what a worker without
    ``--queues`` consumes for it) is ``TASK_FERRY["DEFAULT_QUEUE"]``; the executor
    sends every job to the job's own queue."""
    from dramatiq import actor
    from dramatiq.errors import ActorNotFound

    from task_ferry.conf import get_setting

    with _lock:
        try:
            return broker.get_actor(ACTOR_NAME)
        except ActorNotFound:
            pass
        queue = str(get_setting("DEFAULT_QUEUE"))
        return actor(run_job, actor_name=ACTOR_NAME, queue_name=queue, broker=broker, **actor_options(broker))
