"""The executor's glue: OPTIONS, capability flags, system checks, the job function, and
the exact RQ job it leaves in a real Redis (read back with no worker running): queue,
id, arguments, position for the priority, schedule for ``run_after``, revoke and kill
of jobs that are not running."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import redis
from django.core.checks import Error
from django.core.management import CommandError, call_command
from django.db import OperationalError
from django.utils import timezone
from ferry_rq_testproject.support import CLIENT
from rq import Queue, SimpleWorker, SpawnWorker
from rq.job import Job, JobStatus
from rq.registry import CanceledJobRegistry, ScheduledJobRegistry

from task_ferry.conf import get_executor
from task_ferry.exceptions import ExecutorNotConfigured, Unsupported
from task_ferry.plugins import EXECUTORS
from task_ferry.protocols import Dispatch, Executor
from task_ferry.testing.base import create_pending_job
from task_ferry_rq import jobs
from task_ferry_rq.executor import FAILURE_TTL, FUNC, OPTIONS, RQExecutor, scheduled_time

UNSERVED = "ferry_rq_unserved"


@pytest.fixture
def executor(settings, redis_db9) -> RQExecutor:
    return RQExecutor({"URL": settings.REDIS_URL})


def _dispatch(**fields) -> Dispatch:
    values = {"job_id": 4242, "task_id": uuid.uuid4().hex, "job_type": "ferry_conformance", "queue": UNSERVED}
    return Dispatch(**{**values, **fields})


# ── Discovery and OPTIONS ──────────────────────────────────────────────────────


def test_entry_point_resolves_to_the_executor():
    assert EXECUTORS.load("rq") is RQExecutor
    assert isinstance(RQExecutor(), Executor)


def test_flags():
    executor = RQExecutor()
    assert executor.supports_defer_on_commit and executor.out_of_process
    assert executor.supports_queues and executor.supports_priority and executor.supports_delay
    assert executor.supports_revoke and executor.supports_kill


def test_defaults():
    executor = RQExecutor()
    kwargs = executor.connection.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("127.0.0.1", 6379, 0)
    assert executor.job_timeout == -1  # RQ's "no limit": core owns timeouts
    assert executor.worker_class.__module__.startswith("rq.") and executor.worker_class.__name__ == "Worker"


def test_unknown_options_are_refused_with_the_accepted_names():
    with pytest.raises(ValueError) as info:
        RQExecutor({"URL": "redis://127.0.0.1:6379/9", "QUEUE": "x"})
    assert "['QUEUE']" in str(info.value)
    for name in OPTIONS:
        assert name in str(info.value)


@pytest.mark.parametrize(
    "options",
    [
        {"URL": 42},
        {"URL": "127.0.0.1:6379"},
        {"URL": "http://127.0.0.1:6379/0"},
        {"CONNECTION": 42},
        {"URL": "redis://127.0.0.1:6379/0", "CONNECTION": "a.b"},
        {"DEFAULT_TIMEOUT": 0},
        {"DEFAULT_TIMEOUT": -1},
        {"DEFAULT_TIMEOUT": 1.5},
        {"DEFAULT_TIMEOUT": "60"},
        {"DEFAULT_TIMEOUT": True},
        {"WORKER_CLASS": "no_such_module.Worker"},
        {"WORKER_CLASS": "django.conf.settings"},
    ],
)
def test_bad_option_values_are_refused(options):
    with pytest.raises(ValueError):
        RQExecutor(options)


def test_bad_options_in_settings_fail_loudly(settings):
    settings.TASK_FERRY = {"EXECUTOR": {"BACKEND": "rq", "OPTIONS": {"BROKER_URL": "redis://"}}}
    with pytest.raises(ExecutorNotConfigured, match="unknown OPTIONS"):
        get_executor()


class _MySimpleWorker(SimpleWorker):
    pass


@pytest.mark.parametrize(
    ("worker_class", "killable"),
    [("rq.Worker", True), (SpawnWorker, True), ("rq.SimpleWorker", False), (_MySimpleWorker, False)],
)
def test_kill_is_declared_by_worker_class(worker_class, killable):
    executor = RQExecutor({"WORKER_CLASS": worker_class})
    assert executor.supports_kill is killable
    if not killable:
        with pytest.raises(Unsupported, match="SimpleWorker"):
            executor.kill(1, "some-task-id")


def test_connection_option_takes_a_client_or_its_dotted_path():
    client = redis.Redis.from_url("redis://127.0.0.1:1/3")
    assert RQExecutor({"CONNECTION": client}).connection is client
    assert RQExecutor({"CONNECTION": "ferry_rq_testproject.support.CLIENT"}).connection is CLIENT


# ── System checks ──────────────────────────────────────────────────────────────


def test_check_passes_without_connecting():
    # Port 1 has nothing listening: a check that connected would fail or hang.
    started = time.monotonic()
    assert RQExecutor({"URL": "redis://127.0.0.1:1/0"}).check() == []
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("path", ["no_such_module.client", "django.conf.settings"])
def test_check_reports_a_connection_path_that_is_not_a_client(path):
    messages = RQExecutor({"CONNECTION": path}).check()
    assert [m.id for m in messages] == ["task_ferry_rq.E001"]
    assert isinstance(messages[0], Error) and path in messages[0].msg


def test_check_reports_a_decoding_client():
    client = redis.Redis.from_url("redis://127.0.0.1:1/0", decode_responses=True)
    assert [m.id for m in RQExecutor({"CONNECTION": client}).check()] == ["task_ferry_rq.E002"]


def test_manage_py_check_is_clean_with_the_test_settings(db):
    # db: on Django 6 the model checks ask SQLite whether it supports JSONField.
    call_command("check", fail_level="WARNING")


def test_worker_command_refuses_another_executor(settings):
    settings.TASK_FERRY = {**settings.TASK_FERRY, "EXECUTOR": "immediate"}
    with pytest.raises(CommandError, match="not the rq executor"):
        call_command("ferry_rqworker", "--burst")


# ── The job function (in process: no RQ involved) ─────────────────────────────


@pytest.mark.parametrize(("fail_with", "state"), [("", "finished"), ("boom", "failed")])
def test_job_function_records_the_outcome_and_never_raises_the_jobs_error(transactional_db, fail_with, state):
    """RQ must see success whatever the job did: the runner records the job's exception."""
    job = create_pending_job(steps=1, fail_with=fail_with)
    assert jobs.run_job(job.pk, job.type) is None
    job.refresh_from_db()
    assert (job.state, job.error) == (state, fail_with)


def test_job_function_lets_the_runners_own_errors_reach_rq(monkeypatch):
    """The runner's own failure (the database went away) does reach RQ, which files the RQ
    job as failed, and the broken connection is dropped for the next job."""

    def broken(job_id, job_type=None):
        raise OperationalError("server closed the connection unexpectedly")

    closed: list[bool] = []
    monkeypatch.setattr("task_ferry.runner.run_job", broken)
    monkeypatch.setattr(jobs, "close_old_connections", lambda: closed.append(True))
    with pytest.raises(OperationalError):
        jobs.run_job(7, "ferry_conformance")
    assert closed == [True]


# ── The RQ job left in Redis (no worker) ───────────────────────────────────────


def test_the_rq_job_sent(executor, redis_db9):
    """One RQ job under core's task id: the job function, ``(job_id, job_type)``, on the job's
    queue, with no result kept, failures kept a week, and no RQ time limit."""
    dispatch = _dispatch()
    assert executor.submit(dispatch) is None
    job = Job.fetch(dispatch.task_id, connection=redis_db9)
    assert job.func_name == FUNC
    assert job.args == (4242, "ferry_conformance") and job.kwargs == {}
    assert (job.origin, job.get_status()) == (UNSERVED, JobStatus.QUEUED)
    assert (job.result_ttl, job.failure_ttl, job.timeout, job.ttl) == (0, FAILURE_TTL, -1, None)
    assert Queue(UNSERVED, connection=redis_db9).job_ids == [dispatch.task_id]


def test_default_timeout_becomes_rqs_job_timeout(settings, redis_db9):
    executor = RQExecutor({"URL": settings.REDIS_URL, "DEFAULT_TIMEOUT": 3600})
    dispatch = _dispatch()
    executor.submit(dispatch)
    assert Job.fetch(dispatch.task_id, connection=redis_db9).timeout == 3600


def test_no_queue_means_rqs_default_queue(executor, redis_db9):
    dispatch = _dispatch(queue="")
    executor.submit(dispatch)
    assert Queue("default", connection=redis_db9).job_ids == [dispatch.task_id]


def test_priority_above_zero_goes_to_the_front(executor, redis_db9):
    """Two levels: priority > 0 is pushed to the front of the queue (the latest such job
    first), priority <= 0 to the back in submission order."""
    order = [("a", 0), ("b", -50), ("c", 1), ("d", 100), ("e", 0)]
    ids = {}
    for name, priority in order:
        dispatch = _dispatch(priority=priority)
        ids[dispatch.task_id] = name
        executor.submit(dispatch)
    queued = [ids[task_id] for task_id in Queue(UNSERVED, connection=redis_db9).job_ids]
    assert queued == ["d", "c", "a", "b", "e"]


def test_run_after_schedules_the_job(executor, redis_db9):
    """A future ``run_after`` puts the job in RQ's scheduled registry, due at ``run_after``
    rounded up to the second, not in the queue; the front-of-queue flag goes with it."""
    run_after = timezone.now() + timedelta(hours=1)
    dispatch = _dispatch(run_after=run_after, priority=10)
    executor.submit(dispatch)
    registry = ScheduledJobRegistry(UNSERVED, connection=redis_db9)
    assert registry.get_job_ids() == [dispatch.task_id]
    due = registry.get_scheduled_time(dispatch.task_id)
    assert run_after <= due < run_after + timedelta(seconds=1)
    job = Job.fetch(dispatch.task_id, connection=redis_db9)
    assert job.get_status() == JobStatus.SCHEDULED and job.enqueue_at_front
    assert Queue(UNSERVED, connection=redis_db9).job_ids == []


def test_a_past_run_after_is_queued_at_once(executor, redis_db9):
    dispatch = _dispatch(run_after=timezone.now() - timedelta(minutes=5))
    executor.submit(dispatch)
    assert Queue(UNSERVED, connection=redis_db9).job_ids == [dispatch.task_id]
    assert ScheduledJobRegistry(UNSERVED, connection=redis_db9).get_job_ids() == []


def test_scheduled_time_never_moves_a_start_earlier(settings):
    exact = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert scheduled_time(exact) == exact
    assert scheduled_time(exact + timedelta(microseconds=1)) == exact + timedelta(seconds=1)
    assert scheduled_time(exact + timedelta(milliseconds=999)) == exact + timedelta(seconds=1)
    settings.TIME_ZONE = "Europe/Paris"
    naive = datetime(2030, 1, 1, 13, 0, 0, 500000)  # Paris is UTC+1 in winter
    assert scheduled_time(naive) == exact + timedelta(seconds=1)
    assert scheduled_time(naive).tzinfo is UTC
    assert scheduled_time(exact.astimezone(ZoneInfo("Asia/Tokyo"))) == exact


# ── revoke / kill of jobs that are not running ────────────────────────────────


@pytest.mark.parametrize("delayed", [False, True], ids=["queued", "scheduled"])
def test_revoke_cancels_a_waiting_rq_job(executor, redis_db9, delayed):
    run_after = timezone.now() + timedelta(hours=1) if delayed else None
    dispatch = _dispatch(run_after=run_after)
    executor.submit(dispatch)
    executor.revoke(dispatch.job_id, dispatch.task_id)
    job = Job.fetch(dispatch.task_id, connection=redis_db9)
    assert job.get_status() == JobStatus.CANCELED
    assert CanceledJobRegistry(UNSERVED, connection=redis_db9).get_job_ids() == [dispatch.task_id]
    assert Queue(UNSERVED, connection=redis_db9).job_ids == []
    assert ScheduledJobRegistry(UNSERVED, connection=redis_db9).get_job_ids() == []
    executor.revoke(dispatch.job_id, dispatch.task_id)  # again: nothing left to do, no error


def test_revoke_leaves_a_started_rq_job_and_ignores_unknown_ones(executor, redis_db9):
    """A job a worker already took is core's claim's business (the job row is cancelled);
    one RQ no longer knows (RQ drops finished jobs) is nothing to revoke."""
    dispatch = _dispatch()
    executor.submit(dispatch)
    Job.fetch(dispatch.task_id, connection=redis_db9).set_status(JobStatus.STARTED)
    executor.revoke(dispatch.job_id, dispatch.task_id)
    assert Job.fetch(dispatch.task_id, connection=redis_db9).get_status() == JobStatus.STARTED
    executor.revoke(1, uuid.uuid4().hex)


def test_kill_of_a_job_that_is_not_running_does_nothing(executor, redis_db9):
    dispatch = _dispatch()
    executor.submit(dispatch)
    executor.kill(dispatch.job_id, dispatch.task_id)
    assert Job.fetch(dispatch.task_id, connection=redis_db9).get_status() == JobStatus.QUEUED
    assert Queue(UNSERVED, connection=redis_db9).job_ids == [dispatch.task_id]
    executor.kill(1, uuid.uuid4().hex)
