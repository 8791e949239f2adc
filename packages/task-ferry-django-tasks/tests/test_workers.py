"""Behaviour with real ``db_worker`` processes (django-tasks-db) on the test database:
queue routing, priority order, cancel without a revoke, two workers sharing a queue,
and a worker stopped in the middle of a job."""

from __future__ import annotations

import os
import signal
import time

import pytest
from django.db import transaction

from task_ferry.handler import JobHandler
from task_ferry.testing.base import create_pending_job, dispatch_of, wait_until
from task_ferry.testing.executor import wait_for_state
from task_ferry.testing.jobs import CONFORMANCE_TYPE
from task_ferry.testing.models import ConformanceJob

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TIMEOUT = 30.0


@pytest.fixture
def executor(settings, transactional_db):
    from task_ferry.conf import get_executor

    settings.TASK_FERRY = {**settings.TASK_FERRY, "EXECUTOR": {"BACKEND": "django_tasks", "OPTIONS": {}}}
    return get_executor()


def start(**fields):
    return JobHandler.create_and_start(None, CONFORMANCE_TYPE, **fields)


def task_row(job):
    from django_tasks_db.models import DBTaskResult

    job.refresh_from_db()
    return DBTaskResult.objects.get(id=job.executor_task_id)


def test_a_worker_runs_only_the_queues_it_consumes(executor, start_db_worker):
    with start_db_worker("reports"):
        served = start(queue="reports")
        other = start()  # the default queue, which this worker does not consume
        wait_for_state(served.pk, "finished", TIMEOUT)
        time.sleep(1.0)  # many polls of the worker
        other.refresh_from_db()
        assert (other.state, other.body_runs) == ("pending", 0)
        assert (task_row(served).queue_name, str(task_row(served).status)) == ("reports", "SUCCESSFUL")
        assert (task_row(other).queue_name, str(task_row(other).status)) == ("default", "READY")
        JobHandler.cancel(None, other.pk)


def test_higher_priority_jobs_start_first(executor, start_db_worker):
    with start_db_worker("default"):
        blocker = start(steps=10, step_sleep=0.1)
        wait_for_state(blocker.pk, "started", TIMEOUT)
        with transaction.atomic():  # all three reach the queue together, at commit
            low, top, mid = start(priority=-10), start(priority=90), start(priority=40)
        jobs = [wait_for_state(job.pk, "finished", TIMEOUT) for job in (low, top, mid)]
    order = [job.priority for job in sorted(jobs, key=lambda job: job.started_at)]
    assert order == [90, 40, -10]


def test_a_job_cancelled_while_queued_never_runs(executor, start_db_worker):
    """No revoke: the task stays queued and reaches the worker, which finds the job cancelled
    (the runner's claim is a compare-and-set from pending) and skips it."""
    with start_db_worker("default"):
        blocker = start(steps=20, step_sleep=0.05)
        wait_for_state(blocker.pk, "started", TIMEOUT)
        queued = start()
        assert str(task_row(queued).status) == "READY"
        JobHandler.cancel(None, queued.pk)
        wait_for_state(blocker.pk, "finished", TIMEOUT)
        row = wait_until(
            lambda: (r := task_row(queued)).status == "SUCCESSFUL" and r, TIMEOUT, "the worker to take the task"
        )
    queued.refresh_from_db()
    assert row.return_value == "skipped"
    assert (queued.state, queued.body_runs, queued.attempts, queued.started_at) == ("cancelled", 0, 0, None)


def test_two_workers_never_run_a_job_twice(executor, start_db_worker):
    """Every job delivered three times to two workers on one queue: each body runs once."""
    with start_db_worker("default") as first, start_db_worker("default") as second:
        jobs = [create_pending_job(steps=2, step_sleep=0.02) for _ in range(20)]
        for _ in range(3):
            for job in jobs:
                executor.submit(dispatch_of(job))
        for job in jobs:
            wait_for_state(job.pk, "finished", TIMEOUT)
        from django_tasks_db.models import DBTaskResult

        rows = DBTaskResult.objects.filter(task_path__endswith="run_ferry_job")
        wait_until(lambda: not rows.exclude(status="SUCCESSFUL").exists(), TIMEOUT, "every delivery to be taken")
    runs = list(ConformanceJob.objects.values_list("body_runs", "attempts"))
    assert runs == [(1, 1)] * len(jobs)
    outcomes = sorted(rows.values_list("return_value", flat=True))
    assert outcomes == ["finished"] * 20 + ["skipped"] * 40
    workers = {worker for ids in rows.values_list("worker_ids", flat=True) for worker in ids}
    assert workers == {first.worker_id, second.worker_id}, "both workers took deliveries"


def test_a_worker_stopped_mid_job_records_the_job_failed(executor, start_db_worker):
    """db_worker's second SIGTERM ends the running task (SystemExit inside the job's body) and
    records the task FAILED. The runner never returns, so only the task_finished receiver
    can end the job; without it the job would stay started forever."""
    with start_db_worker("default") as worker:
        job = start(steps=400, step_sleep=0.05)
        wait_for_state(job.pk, "started", TIMEOUT)
        os.kill(worker.pid, signal.SIGTERM)  # graceful: finish the current task, then stop
        time.sleep(0.5)
        os.kill(worker.pid, signal.SIGTERM)  # now: stop the current task
        assert worker.wait(TIMEOUT) == 0
    job = wait_for_state(job.pk, "failed", TIMEOUT)
    assert job.error.endswith("failed in the task framework: SystemExit: 1"), job.error
    assert job.body_runs == 1 and job.progress_percentage < 100
    row = task_row(job)
    assert (str(row.status), row.exception_class_path) == ("FAILED", "builtins.SystemExit")
