"""Timeouts: a cooperative job stops at its first flush past the deadline; a job
that never yields is stopped for real, by isolation (a child process the
runner kills: SIGTERM, then SIGKILL after ``TIMEOUT_GRACE``) or, for an
executor that ``supports_kill``, by the reaper through ``executor.kill``.

A timed-out job is ``failed`` with ``error_code = "timeout"``; ``on_error``
gets a ``JobTimedOut``; its attempt's outcome is ``timeout``. Isolated bodies
otherwise behave like in-process ones: their progress, logs, database writes,
return value and exceptions reach the runner, and a cancel stops them.

Isolation forks, so these tests use ``transactional_db``: the child works on
its own connection and sees only committed rows.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone
from ferry_core_testproject.testapp.models import ScriptedJob

from task_ferry.exceptions import JobTimedOut
from task_ferry.executors.base import BaseExecutor
from task_ferry.handler import JobHandler
from task_ferry.models import Job, JobAttempt, JobLog
from task_ferry.reaper import reap
from task_ferry.registry import JobType, job_type_registry
from task_ferry.states import (
    ERROR_TIMEOUT,
    ERROR_WORKER_LOST,
    JOB_CANCELLED,
    JOB_FAILED,
    JOB_FINISHED,
    JOB_RETRYING,
    JOB_STARTED,
)

FAST = {
    "EXECUTOR": {"BACKEND": "immediate", "OPTIONS": {"RAISE_EXCEPTIONS": False}},
    "PROGRESS_STORE": "database",
    "PROGRESS_FLUSH_INTERVAL": 0.02,
    "TIMEOUT_GRACE": 0.5,
}


def _hook(job, name: str) -> None:
    current = ScriptedJob._base_manager.filter(pk=job.pk).values_list("hook_calls", flat=True).first() or []
    ScriptedJob._base_manager.filter(pk=job.pk).update(hook_calls=[*current, name])


class _Hooks(JobType):
    model_class = ScriptedJob
    max_count = 100

    def on_error(self, job, exc):
        _hook(job, f"on_error:{type(exc).__name__}")

    def on_cancelled(self, job):
        _hook(job, "on_cancelled")

    def after_run(self, job):
        _hook(job, "after_run")


class Cooperative(_Hooks):
    """``steps`` increments, ``step_sleep`` apart."""

    type = "test_cooperative"
    timeout = 0.3

    def run(self, job, progress):
        for _ in range(job.steps):
            time.sleep(job.step_sleep)
            progress.increment(100 / job.steps)
        return "done"


class CooperativeRetried(Cooperative):
    type = "test_cooperative_retried"
    max_attempts = 2
    retry_backoff = 0


class Isolated(_Hooks):
    """In a child process. ``fail_with`` picks the behaviour: "" works through
    ``steps`` increments and returns; "stubborn" logs its pid and sleeps forever,
    swallowing every exception (so only SIGKILL stops it); "sleepy" sleeps
    without catching anything (SIGTERM's JobTimedOut stops it); "raise" raises;
    "die" kills its own process."""

    type = "test_isolated"
    isolation = "process"
    timeout = 0.6

    def run(self, job, progress):
        ScriptedJob._base_manager.filter(pk=job.pk).update(body_runs=F("body_runs") + 1)
        job.log(f"pid {os.getpid()}")
        if job.fail_with == "stubborn":
            while True:
                try:
                    time.sleep(30)
                except BaseException as exc:
                    job.log(f"ignoring {type(exc).__name__}")
        if job.fail_with == "sleepy":
            time.sleep(30)
        if job.fail_with == "raise":
            raise KeyError("raised in the child")
        if job.fail_with == "die":
            os.kill(os.getpid(), signal.SIGKILL)
        for step in range(job.steps):
            time.sleep(job.step_sleep)
            progress.increment(100 / job.steps, state=f"step {step + 1}")
        return {"pid": os.getpid()}


class Sleeper(_Hooks):
    """Never yields; not isolated: only the reaper (and the executor's kill) can end it."""

    type = "test_sleeper"
    timeout = 1.0

    def run(self, job, progress):
        time.sleep(job.step_sleep)


class KillingExecutor(BaseExecutor):
    supports_defer_on_commit = True
    out_of_process = True
    supports_kill = True
    killed: list = []

    def submit(self, dispatch):
        return None

    def kill(self, job_id, task_id):
        KillingExecutor.killed.append((job_id, task_id))


class NonKillingExecutor(KillingExecutor):
    supports_kill = False

    def kill(self, job_id, task_id):
        raise AssertionError("kill() called although supports_kill is False")


@pytest.fixture(autouse=True)
def job_types(settings):
    settings.TASK_FERRY = FAST
    types = [Cooperative(), CooperativeRetried(), Isolated(), Sleeper()]
    for t in types:
        job_type_registry.register(t)
    KillingExecutor.killed = []
    yield
    for t in types:
        job_type_registry.unregister(t.type)


def _pid_of(job) -> int:
    line = JobLog.objects.filter(job_id=job.pk, message__startswith="pid ").get()
    return int(line.message.split()[1])


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# ── Cooperative ────────────────────────────────────────────────────────────────


def test_cooperative_job_stops_at_its_first_flush_past_the_deadline(db, failures):
    started = time.monotonic()
    job = JobHandler.create_and_start(None, "test_cooperative", steps=200, step_sleep=0.01)
    took = time.monotonic() - started
    row = ScriptedJob.objects.get(pk=job.pk)
    assert (row.state, row.error_code) == (JOB_FAILED, ERROR_TIMEOUT)
    assert row.error == "The job ran longer than its timeout of 0.3s."
    assert 0.3 <= took < 1.0, took  # the flush right after 0.3 s, not the end of 2 s of work
    assert 0 < row.progress_percentage < 100
    assert row.hook_calls == ["on_error:JobTimedOut", "after_run"]
    assert isinstance(failures[0][1], JobTimedOut)
    assert JobAttempt.objects.get(job_id=job.pk).outcome == "timeout"


def test_a_jobs_timeout_overrides_its_types(db):
    short = JobHandler.create_and_start(None, "test_cooperative", steps=50, step_sleep=0.01, timeout=0.1)
    long = JobHandler.create_and_start(None, "test_cooperative", steps=50, step_sleep=0.01, timeout=5)
    assert Job.objects.get(pk=short.pk).error_code == ERROR_TIMEOUT
    assert Job.objects.get(pk=long.pk).state == JOB_FINISHED
    with pytest.raises(ValueError, match="timeout"):
        JobHandler.create_and_start(None, "test_cooperative", timeout=0)


def test_a_timeout_is_retried_when_the_policy_says_so(db):
    job = JobHandler.create_and_start(None, "test_cooperative_retried", steps=100, step_sleep=0.01)
    row = Job.objects.get(pk=job.pk)
    assert (row.state, row.attempts, row.error_code) == (JOB_FAILED, 2, ERROR_TIMEOUT)
    assert list(JobAttempt.objects.filter(job_id=job.pk).values_list("outcome", flat=True)) == ["timeout"] * 2


# ── Isolation: a body that never yields is killed ──────────────────────────────


def test_isolated_job_that_ignores_everything_is_killed_within_timeout_plus_grace(transactional_db, failures):
    started = time.monotonic()
    job = JobHandler.create_and_start(None, "test_isolated", fail_with="stubborn")
    took = time.monotonic() - started
    row = ScriptedJob.objects.get(pk=job.pk)
    assert (row.state, row.error_code) == (JOB_FAILED, ERROR_TIMEOUT)
    assert "SIGKILL after 0.5s" in row.error
    assert 0.6 + 0.5 <= took < 0.6 + 0.5 + 1.0, took
    pid = _pid_of(job)
    assert pid != os.getpid() and _gone(pid)
    # SIGTERM reached the body first (as JobTimedOut), and was swallowed.
    assert JobLog.objects.filter(job_id=job.pk, message="ignoring JobTimedOut").exists()
    assert row.hook_calls == ["on_error:JobTimedOut", "after_run"]
    assert isinstance(failures[0][1], JobTimedOut)


def test_isolated_job_stopped_by_sigterm_needs_no_grace(transactional_db):
    started = time.monotonic()
    job = JobHandler.create_and_start(None, "test_isolated", fail_with="sleepy")
    took = time.monotonic() - started
    row = Job.objects.get(pk=job.pk)
    assert (row.state, row.error_code) == (JOB_FAILED, ERROR_TIMEOUT)
    assert row.error == "The job ran longer than its timeout of 0.6s."
    assert took < 0.6 + 0.4, took
    assert _gone(_pid_of(job))


def test_isolated_job_that_finishes_behaves_like_an_inline_one(transactional_db):
    job = JobHandler.create_and_start(None, "test_isolated", steps=5, step_sleep=0.02)
    row = ScriptedJob.objects.get(pk=job.pk)
    assert (row.state, row.progress_percentage, row.progress_state) == (JOB_FINISHED, 100, "step 5")
    assert row.result["pid"] != os.getpid()
    assert row.body_runs == 1  # the child's own database writes
    assert row.hook_calls == ["after_run"]  # hooks run once, in the runner
    assert JobLog.objects.filter(job_id=job.pk).count() == 1
    assert JobAttempt.objects.get(job_id=job.pk).outcome == "finished"
    assert _gone(row.result["pid"])


def test_isolated_job_exception_arrives_as_itself_with_its_traceback(transactional_db, failures):
    job = JobHandler.create_and_start(None, "test_isolated", fail_with="raise")
    row = ScriptedJob.objects.get(pk=job.pk)
    assert (row.state, row.error_code, row.error) == (JOB_FAILED, "exception", "'raised in the child'")
    assert isinstance(failures[0][1], KeyError)
    traceback = JobAttempt.objects.get(job_id=job.pk).traceback
    assert "KeyError: 'raised in the child'" in traceback and "test_timeouts.py" in traceback


def test_isolated_job_whose_process_dies_is_a_lost_worker(transactional_db):
    job = JobHandler.create_and_start(None, "test_isolated", fail_with="die")
    row = Job.objects.get(pk=job.pk)
    assert (row.state, row.error_code) == (JOB_FAILED, ERROR_WORKER_LOST)
    assert "killed by SIGKILL" in row.error


def test_cancel_stops_an_isolated_job_that_never_yields(transactional_db):
    """The runner checks about once a second that its attempt is still running;
    a cancel then stops the child (SIGTERM, SIGKILL after the grace)."""
    import threading

    from django.db import connections

    def run():
        try:
            JobHandler.create_and_start(None, "test_isolated", fail_with="stubborn", timeout=60)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 10
    while not JobLog.objects.filter(message__startswith="pid ").exists():
        assert time.monotonic() < deadline, "the isolated job did not start"
        time.sleep(0.05)
    line = JobLog.objects.get(message__startswith="pid ")
    cancelled_at = time.monotonic()
    JobHandler.cancel(None, line.job_id)
    thread.join(10)
    took = time.monotonic() - cancelled_at
    row = ScriptedJob.objects.get(pk=line.job_id)
    assert row.state == JOB_CANCELLED
    assert took < 1.0 + 0.5 + 1.0, took
    assert _gone(int(line.message.split()[1]))
    assert row.hook_calls == ["on_cancelled", "after_run"]


# ── The reaper: bodies no one stopped ──────────────────────────────────────────


def _started_long_ago(job, seconds: float) -> None:
    """What a worker running a non-yielding body looks like: started, heartbeat fresh."""
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(
        state=JOB_STARTED, attempts=1, started_at=now - timedelta(seconds=seconds), heartbeat_at=now
    )


def test_reaper_ends_a_job_past_timeout_and_grace_and_kills_it_through_the_executor(transactional_db, settings):
    settings.TASK_FERRY = {**FAST, "EXECUTOR": f"{__name__}.KillingExecutor"}
    job = JobHandler.create_and_start(None, "test_sleeper", step_sleep=60)
    task_id = Job.objects.get(pk=job.pk).executor_task_id
    _started_long_ago(job, 1.2)  # timeout 1.0 + grace 0.5 not yet passed
    assert not reap().timed_out
    _started_long_ago(job, 1.6)
    result = reap()
    assert result.timed_out == [job.pk] and result.killed == [job.pk]
    assert KillingExecutor.killed == [(job.pk, task_id)]
    row = ScriptedJob.objects.get(pk=job.pk)
    assert (row.state, row.error_code) == (JOB_FAILED, ERROR_TIMEOUT)
    assert row.hook_calls == ["on_error:JobTimedOut", "after_run"]
    assert JobAttempt.objects.get(job_id=job.pk).outcome == "timeout"
    assert not reap().timed_out  # ended once


def test_reaper_records_a_timeout_it_cannot_kill_and_says_so(transactional_db, settings, caplog):
    settings.TASK_FERRY = {**FAST, "EXECUTOR": f"{__name__}.NonKillingExecutor"}
    job = JobHandler.create_and_start(None, "test_sleeper", step_sleep=60)
    _started_long_ago(job, 5)
    with caplog.at_level("WARNING", logger="task_ferry.reaper"):
        assert reap().timed_out == [job.pk]
    assert Job.objects.get(pk=job.pk).error_code == ERROR_TIMEOUT
    assert "cannot kill it" in caplog.text and 'isolation = "process"' in caplog.text


def test_reaper_retries_a_timed_out_job_under_its_policy(transactional_db, settings):
    settings.TASK_FERRY = {**FAST, "EXECUTOR": f"{__name__}.KillingExecutor"}
    job = JobHandler.create_and_start(None, "test_sleeper", step_sleep=60, max_attempts=2)
    _started_long_ago(job, 5)
    result = reap()
    assert result.timed_out == result.retried == [job.pk]
    assert Job.objects.get(pk=job.pk).state in (JOB_RETRYING, "pending")
