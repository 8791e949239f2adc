"""The executor against real RQ workers started with ``manage.py ferry_rqworker``: what
the kit does not look at (the RQ job a job runs as and what RQ records of it, queue
order as the priority between queues, cancel of a queued job in RQ, kill of a job that
ignores both cancel and SIGTERM, ``WORKER_CLASS``).

One worker for the module (``high default low``, with the scheduler); tests that need
another worker start their own."""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.db import transaction
from django.utils import timezone
from ferry_rq_testproject.rqapp.models import ProbeJob
from ferry_rq_testproject.support import rq_worker
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import CanceledJobRegistry, FailedJobRegistry, ScheduledJobRegistry

from task_ferry.conf import get_executor
from task_ferry.handler import JobHandler
from task_ferry.testing.base import wait_until
from task_ferry.testing.executor import wait_for_state
from task_ferry.testing.subprocess import child_env

pytestmark = pytest.mark.integration

TIMEOUT = 30.0
QUEUES = ["high", "default", "low"]


@pytest.fixture(scope="module")
def module_worker(redis_db9, django_db_setup):
    env = child_env(settings={"TASK_FERRY": django_settings.TASK_FERRY})
    with rq_worker(QUEUES, env=env) as proc:
        yield proc


@pytest.fixture(autouse=True)
def _setup(transactional_db, module_worker):
    pass


def _probe(**fields) -> ProbeJob:
    return JobHandler.create_and_start(None, "ferry_rq_probe", **fields)


def _wait_probe(job: ProbeJob, state: str) -> ProbeJob:
    return wait_until(
        lambda: (j := ProbeJob._base_manager.get(pk=job.pk)).state == state and j,
        TIMEOUT,
        lambda: f"probe job {job.pk} to be {state} (row: {ProbeJob._base_manager.get(pk=job.pk).__dict__})",
    )


def _beats(job: ProbeJob, at_least: int) -> ProbeJob:
    return wait_until(
        lambda: (j := ProbeJob._base_manager.get(pk=job.pk)).beats >= at_least and j,
        TIMEOUT,
        f"job {job.pk} to beat {at_least} times",
    )


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_the_job_runs_as_the_rq_job_of_cores_task_id(module_worker, redis_db9):
    """The body runs in a work horse (not the worker process) as the RQ job whose id is
    core's task id, on the job's queue; RQ then drops the job (no result kept)."""
    job = _wait_probe(_probe(), "finished")
    assert (job.rq_job_id, job.rq_queue, job.body_runs) == (job.executor_task_id, "default", 1)
    assert job.pid not in (None, module_worker.pid, os.getpid())
    wait_until(lambda: not Job.exists(job.executor_task_id, connection=redis_db9), 5, "RQ to drop the job")
    assert FailedJobRegistry("default", connection=redis_db9).get_job_ids() == []


def test_a_failing_job_is_a_successful_rq_job(redis_db9):
    """The runner records the job's exception; RQ sees success: nothing in its failed
    registry, and the job dropped as a finished one (a failed RQ job would be kept)."""
    job = JobHandler.create_and_start(None, "ferry_conformance", steps=1, fail_with="boom")
    job = wait_for_state(job.pk, "failed", TIMEOUT)
    assert job.error == "boom"
    wait_until(lambda: not Job.exists(job.executor_task_id, connection=redis_db9), 5, "RQ to drop the job")
    assert FailedJobRegistry("default", connection=redis_db9).get_job_ids() == []


def test_queue_order_is_the_priority_between_queues():
    """``ferry_rqworker high default low`` takes from the first non-empty queue: jobs
    queued while the worker is busy start high, then default, then low, whatever
    order they were queued in and whatever their priority."""
    blocker = _probe(seconds=2.5)  # the three must all be queued before it ends
    _beats(blocker, 1)
    with transaction.atomic():
        low = JobHandler.create_and_start(None, "ferry_conformance", queue="low", priority=100)
        default = JobHandler.create_and_start(None, "ferry_conformance", queue="default")
        high = JobHandler.create_and_start(None, "ferry_conformance", queue="high", priority=-100)
    started = [wait_for_state(j.pk, "finished", TIMEOUT).started_at for j in (high, default, low)]
    assert started == sorted(started)
    assert ProbeJob._base_manager.get(pk=blocker.pk).finished_at <= started[0]


def test_cancelling_a_queued_job_cancels_its_rq_job(redis_db9):
    """A job cancelled while it waits in its queue is cancelled in RQ at once (out of the
    queue, into RQ's canceled registry); the worker never takes it."""
    blocker = _probe(seconds=2)
    _beats(blocker, 1)
    queued = JobHandler.create_and_start(None, "ferry_conformance", steps=1)
    assert Queue("default", connection=redis_db9).job_ids == [queued.executor_task_id]
    JobHandler.cancel(None, queued.pk)

    rq_job = Job.fetch(queued.executor_task_id, connection=redis_db9)
    assert rq_job.get_status() == JobStatus.CANCELED
    assert CanceledJobRegistry("default", connection=redis_db9).get_job_ids() == [queued.executor_task_id]
    assert Queue("default", connection=redis_db9).job_ids == []
    _wait_probe(blocker, "finished")
    time.sleep(1.5)  # the worker would take the next job now
    queued.refresh_from_db()
    assert (queued.state, queued.body_runs, queued.attempts, queued.started_at) == ("cancelled", 0, 0, None)
    assert Job.fetch(queued.executor_task_id, connection=redis_db9).get_status() == JobStatus.CANCELED


def test_kill_stops_a_job_that_ignores_cancel_and_sigterm(module_worker, redis_db9):
    """Cancel first (the row says ``cancelled`` at once): the job never reports progress so
    it runs on, and it ignores SIGTERM too. ``kill`` (RQ's stop-job command) stops it:
    the worker SIGKILLs the work horse, RQ records the job ``stopped``, and the worker
    goes on with the next job."""
    job = _beats(_probe(seconds=60), 3)
    JobHandler.cancel(None, job.pk)
    os.kill(job.pid, signal.SIGTERM)
    beats = _beats(job, job.beats + 5).beats  # still running, half a second later
    assert _alive(job.pid)

    get_executor().kill(job.pk, job.executor_task_id)
    killed_at = time.monotonic()
    wait_until(lambda: not _alive(job.pid), 10, f"the work horse {job.pid} to die")
    assert time.monotonic() - killed_at < 5
    settled = ProbeJob._base_manager.get(pk=job.pk).beats
    time.sleep(1.0)
    job.refresh_from_db()
    assert job.beats == settled >= beats, "the killed job went on beating"
    assert (job.state, job.body_runs) == ("cancelled", 1)
    rq_job = Job.fetch(job.executor_task_id, connection=redis_db9)
    assert rq_job.get_status() == JobStatus.STOPPED
    assert module_worker.poll() is None

    after = JobHandler.create_and_start(None, "ferry_conformance", steps=1)
    wait_for_state(after.pk, "finished", TIMEOUT)


def test_run_after_waits_in_rqs_scheduled_registry(redis_db9):
    """The command's ``--with-scheduler`` moves a delayed job to its queue once due."""
    run_after = timezone.now() + timedelta(seconds=2)
    job = JobHandler.create_and_start(None, "ferry_conformance", steps=1, run_after=run_after)
    assert ScheduledJobRegistry("default", connection=redis_db9).get_job_ids() == [job.executor_task_id]
    job = wait_for_state(job.pk, "finished", TIMEOUT)
    assert job.started_at >= run_after
    assert ScheduledJobRegistry("default", connection=redis_db9).get_job_ids() == []


def test_worker_class_simple_worker_runs_jobs_in_the_worker_process(settings):
    """``WORKER_CLASS`` reaches the command: ``rq.SimpleWorker`` runs every job in the
    worker process itself (the module's forking worker runs each in a new horse)."""
    ferry = {
        **settings.TASK_FERRY,
        "EXECUTOR": {"BACKEND": "rq", "OPTIONS": {"URL": settings.REDIS_URL, "WORKER_CLASS": "rq.SimpleWorker"}},
    }
    settings.TASK_FERRY = ferry
    assert get_executor().supports_kill is False
    with rq_worker(["ferry_rq_simple"], env=child_env(settings={"TASK_FERRY": ferry}), with_scheduler=False) as proc:
        jobs = [_probe(queue="ferry_rq_simple") for _ in range(2)]
        pids = {_wait_probe(j, "finished").pid for j in jobs}
    assert pids == {proc.pid}
