"""What RQ workers run: the job function ``task_ferry_rq.jobs.run_job``.

The worker process must have Django set up before it forks a work horse
(``manage.py ferry_rqworker`` does; so does django-rq's ``rqworker``): the
horse inherits the loaded project and only runs the job.

The function never fails in RQ's eyes for the job's own reasons: core's runner
records the job's exception on the job, and RQ sees a successful job (engine
retries stay off; core owns retries). Only an error of the runner's own work
(the database went away) reaches RQ, which files the RQ job as failed. A second
delivery of the same job is harmless: the runner's claim is a compare-and-set
from ``pending``.
"""

from __future__ import annotations

from django.db import close_old_connections


def run_job(job_id: int, job_type: str | None = None) -> None:
    """Run one job through core's runner; the outcome is recorded on the job, not returned."""
    from task_ferry.runner import run_job as run

    try:
        run(job_id, job_type)
    finally:
        # Django's request cycle does this for views; a worker must do it itself. In a forked
        # horse it closes the connection cleanly before the horse exits; in a SimpleWorker it
        # drops a broken or expired connection before the next job (CONN_MAX_AGE).
        close_old_connections()
