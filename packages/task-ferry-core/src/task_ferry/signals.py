"""Django signals sent over a job's life. Each is sent with ``sender`` = the job
type class and ``job`` = the (specific) job; ``job_failed`` adds ``exc``
(``JobTimedOut`` for a timeout, ``WorkerLost`` for a job the reaper ended);
``job_retried`` adds ``exc`` and ``automatic`` (True: the retry policy scheduled
another attempt after ``exc``; False: ``JobHandler.retry``, ``exc`` is None).

Receivers run in the process that made the change (the web process for
``job_created``, the worker for the others, the reaper's process for jobs it
ends or retries); a receiver that raises is logged and does not change the
job's recorded outcome.
"""

from django.dispatch import Signal

job_created = Signal()
job_started = Signal()
job_finished = Signal()
job_failed = Signal()
job_cancelled = Signal()
job_retried = Signal()


def send(signal: Signal, job_type, job, **extra) -> None:
    """Send ``signal`` for ``job``; a receiver that raises is logged, never propagated."""
    import logging

    try:
        signal.send(type(job_type), job=job, **extra)
    except Exception:
        logging.getLogger("task_ferry").exception("task-ferry: a signal receiver raised for job %s.", job.pk)
