"""Retries: the per-type policy, the per-job override, the attempt history, and
where the next attempt is dispatched from.

1. A failing attempt is retried while the policy allows (``max_attempts``,
   ``retry_on``); each attempt leaves a ``JobAttempt`` row with its error and
   traceback; ``on_retry`` / ``job_retried`` for each retry, ``on_error`` /
   ``job_failed`` only for the last failure.
2. Backoff is exponential, capped, and jittered (full jitter).
3. A job waiting for its next attempt is visibly ``retrying`` with ``run_after``;
   it counts towards ``max_count`` and can be cancelled like a pending job.
4. Dispatch of the next attempt: through the executor with ``run_after`` when it
   ``supports_delay``; at once when the backoff is 0; otherwise by the reaper
   once due, exactly once even with reapers racing (PostgreSQL).
"""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import F
from django.test import override_settings
from django.utils import timezone
from ferry_core_testproject.testapp.models import ScriptedJob

from task_ferry import conf, signals
from task_ferry.exceptions import MaxJobCountExceeded
from task_ferry.executors.base import BaseExecutor
from task_ferry.handler import JobHandler
from task_ferry.models import Job, JobAttempt
from task_ferry.reaper import reap
from task_ferry.registry import JobType, job_type_registry
from task_ferry.runner import SKIPPED, run_job
from task_ferry.states import (
    ERROR_EXCEPTION,
    JOB_CANCELLED,
    JOB_FAILED,
    JOB_FINISHED,
    JOB_PENDING,
    JOB_RETRYING,
)


def _hook(job, name: str) -> None:
    current = ScriptedJob._base_manager.filter(pk=job.pk).values_list("hook_calls", flat=True).first() or []
    ScriptedJob._base_manager.filter(pk=job.pk).update(hook_calls=[*current, name])


class FlakyType(JobType):
    """Fails until attempt ``steps`` (so ``steps=3`` succeeds on the third attempt);
    ``fail_with`` names the exception class to raise (default RuntimeError)."""

    type = "test_flaky"
    model_class = ScriptedJob
    max_count = 100
    max_attempts = 3
    retry_backoff = 0

    def run(self, job, progress):
        ScriptedJob._base_manager.filter(pk=job.pk).update(body_runs=F("body_runs") + 1)
        progress.increment(50, state=f"attempt {job.attempts}")
        if job.attempts < job.steps:
            error = {"ValueError": ValueError, "ConnectionError": ConnectionError}.get(job.fail_with, RuntimeError)
            raise error(f"flaky attempt {job.attempts}")
        return {"attempt": job.attempts}

    def on_retry(self, job, exc):
        _hook(job, f"on_retry:{type(exc).__name__}")

    def on_error(self, job, exc):
        _hook(job, f"on_error:{type(exc).__name__}")

    def after_run(self, job):
        _hook(job, "after_run")

    def on_cancelled(self, job):
        _hook(job, "on_cancelled")


class BackoffType(FlakyType):
    type = "test_flaky_backoff"
    retry_backoff = 30
    retry_jitter = False


class OnlyConnectionErrors(FlakyType):
    type = "test_flaky_connection_only"
    retry_on = (ConnectionError,)


class RecordingExecutor(BaseExecutor):
    """Records dispatches and runs nothing; deferred to commit like a broker executor."""

    supports_defer_on_commit = True
    out_of_process = True
    submitted: list = []

    def submit(self, dispatch):
        RecordingExecutor.submitted.append(dispatch)
        return None


class DelayingExecutor(RecordingExecutor):
    supports_delay = True


class RefusingExecutor(RecordingExecutor):
    """Accepts the first dispatch, refuses the rest (a broker that went away)."""

    def submit(self, dispatch):
        if RecordingExecutor.submitted:
            raise ConnectionError("broker down")
        return super().submit(dispatch)


def _executor(cls) -> str:
    return f"{__name__}.{cls.__name__}"


@pytest.fixture(autouse=True)
def job_types():
    types = [FlakyType(), BackoffType(), OnlyConnectionErrors()]
    for t in types:
        job_type_registry.register(t)
    RecordingExecutor.submitted = []
    yield
    for t in types:
        job_type_registry.unregister(t.type)


@pytest.fixture
def retried_signals():
    seen = []

    def receiver(sender, job, **kwargs):
        seen.append((job.pk, kwargs.get("automatic"), type(kwargs.get("exc")).__name__))

    signals.job_retried.connect(receiver)
    yield seen
    signals.job_retried.disconnect(receiver)


@pytest.fixture
def failed_signals():
    seen = []

    def receiver(sender, job, exc, **kwargs):
        seen.append((job.pk, type(exc).__name__))

    signals.job_failed.connect(receiver)
    yield seen
    signals.job_failed.disconnect(receiver)


def _attempts(job) -> list[tuple]:
    return list(JobAttempt.objects.filter(job_id=job.pk).order_by("number").values_list("number", "outcome", "error"))


# ── 1. The policy and the attempt history ──────────────────────────────────────


def test_failing_attempts_are_retried_until_one_succeeds(db, retried_signals, failed_signals):
    """Immediate executor, backoff 0: the retries run inline, one after the other;
    ``create_and_start`` returns once the third attempt finished."""
    job = JobHandler.create_and_start(None, "test_flaky", steps=3)
    row = ScriptedJob.objects.get(pk=job.pk)
    assert (row.state, row.attempts, row.body_runs, row.result) == (JOB_FINISHED, 3, 3, {"attempt": 3})
    assert (row.error, row.error_code) == ("", "")
    assert _attempts(job) == [
        (1, "failed", "flaky attempt 1"),
        (2, "failed", "flaky attempt 2"),
        (3, "finished", ""),
    ]
    traceback_1 = JobAttempt.objects.get(job_id=job.pk, number=1).traceback
    assert "RuntimeError: flaky attempt 1" in traceback_1 and "in run" in traceback_1
    assert row.hook_calls == [
        "on_retry:RuntimeError",
        "after_run",
        "on_retry:RuntimeError",
        "after_run",
        "after_run",
    ]
    assert retried_signals == [(job.pk, True, "RuntimeError")] * 2
    assert failed_signals == []


@override_settings(TASK_FERRY={"EXECUTOR": {"BACKEND": "immediate", "OPTIONS": {"RAISE_EXCEPTIONS": False}}})
def test_the_last_allowed_attempt_fails_the_job(db, retried_signals, failed_signals):
    job = JobHandler.create_and_start(None, "test_flaky", steps=10)
    row = ScriptedJob.objects.get(pk=job.pk)
    assert (row.state, row.attempts, row.body_runs) == (JOB_FAILED, 3, 3)
    assert (row.error, row.error_code) == ("flaky attempt 3", ERROR_EXCEPTION)
    assert [a[1] for a in _attempts(job)] == ["failed"] * 3
    assert row.hook_calls.count("on_error:RuntimeError") == 1 and row.hook_calls[-2:] == [
        "on_error:RuntimeError",
        "after_run",
    ]
    assert len(retried_signals) == 2 and failed_signals == [(job.pk, "RuntimeError")]


def test_the_immediate_executor_raises_only_the_last_failure(db):
    with pytest.raises(RuntimeError, match="flaky attempt 3"):
        JobHandler.create_and_start(None, "test_flaky", steps=10)
    assert Job.objects.get().attempts == 3


@override_settings(TASK_FERRY={"EXECUTOR": {"BACKEND": "immediate", "OPTIONS": {"RAISE_EXCEPTIONS": False}}})
def test_retry_on_decides_which_exceptions_retry(db):
    not_retried = JobHandler.create_and_start(None, "test_flaky_connection_only", steps=3, fail_with="ValueError")
    retried = JobHandler.create_and_start(None, "test_flaky_connection_only", steps=3, fail_with="ConnectionError")
    assert Job.objects.get(pk=not_retried.pk).state == JOB_FAILED
    assert Job.objects.get(pk=not_retried.pk).attempts == 1
    assert (Job.objects.get(pk=retried.pk).state, Job.objects.get(pk=retried.pk).attempts) == (JOB_FINISHED, 3)


@override_settings(TASK_FERRY={"EXECUTOR": {"BACKEND": "immediate", "OPTIONS": {"RAISE_EXCEPTIONS": False}}})
def test_a_jobs_max_attempts_overrides_its_types(db):
    once = JobHandler.create_and_start(None, "test_flaky", steps=3, max_attempts=1)
    twice = JobHandler.create_and_start(None, "test_flaky", steps=3, max_attempts=2)
    five = JobHandler.create_and_start(None, "test_flaky", steps=5, max_attempts=5)
    assert [(Job.objects.get(pk=j.pk).state, Job.objects.get(pk=j.pk).attempts) for j in (once, twice, five)] == [
        (JOB_FAILED, 1),
        (JOB_FAILED, 2),
        (JOB_FINISHED, 5),
    ]
    with pytest.raises(ValueError, match="max_attempts"):
        JobHandler.create_and_start(None, "test_flaky", max_attempts=0)


# ── 2. Backoff ─────────────────────────────────────────────────────────────────


def test_backoff_is_exponential_capped_and_fully_jittered():
    policy = FlakyType()
    policy.retry_backoff, policy.retry_backoff_max, policy.retry_jitter = 2.0, 20.0, False
    job = Job()
    delays = []
    for attempt in range(1, 7):
        job.attempts = attempt
        delays.append(policy.retry_delay(job))
    assert delays == [2.0, 4.0, 8.0, 16.0, 20.0, 20.0]

    policy.retry_jitter = True
    job.attempts = 3  # cap 8s
    samples = [policy.retry_delay(job) for _ in range(500)]
    assert all(0 <= s <= 8.0 for s in samples)
    # Full jitter spreads over the whole range, not around the cap.
    assert min(samples) < 1.0 and max(samples) > 7.0 and len(set(samples)) > 400


# ── 3. A job waiting for its next attempt ──────────────────────────────────────


@override_settings(TASK_FERRY={"EXECUTOR": {"BACKEND": "immediate", "OPTIONS": {"RAISE_EXCEPTIONS": False}}})
def test_waiting_job_is_retrying_with_run_after_and_the_reaper_runs_it_when_due(db):
    """Immediate executor with a backoff: nothing sleeps; the job waits ``retrying``
    and ``ferry reap`` runs the next attempt once ``run_after`` has passed."""
    before = timezone.now()
    job = JobHandler.create_and_start(None, "test_flaky_backoff", steps=2)
    row = ScriptedJob.objects.get(pk=job.pk)
    assert row.state == JOB_RETRYING
    assert before + timedelta(seconds=29) < row.run_after < timezone.now() + timedelta(seconds=31)
    assert (row.error, row.error_code, row.finished_at) == ("flaky attempt 1", ERROR_EXCEPTION, None)
    assert "will be retried" in row.human_readable_error
    assert row.hook_calls == ["on_retry:RuntimeError", "after_run"]

    assert run_job(job.pk).outcome == SKIPPED  # a delivery before run_after does not run it
    assert not reap().dispatched  # not due yet
    assert reap(now=timezone.now() + timedelta(seconds=31)).dispatched == [job.pk]
    row = ScriptedJob.objects.get(pk=job.pk)
    assert (row.state, row.attempts, row.body_runs) == (JOB_FINISHED, 2, 2)
    assert [a[1] for a in _attempts(job)] == ["failed", "finished"]


@override_settings(TASK_FERRY={"EXECUTOR": _executor(RecordingExecutor)})
def test_retrying_counts_towards_max_count_and_can_be_cancelled(transactional_db):
    user = get_user_model().objects.create_user("r")
    BackoffType.max_count = 1
    try:
        job = JobHandler.create_and_start(user, "test_flaky_backoff", steps=2)
        assert run_job(job.pk).outcome == JOB_RETRYING
        assert Job.objects.get(pk=job.pk).state == JOB_RETRYING
        with pytest.raises(MaxJobCountExceeded):
            JobHandler.create_and_start(user, "test_flaky_backoff", steps=2)

        assert JobHandler.cancel(None, job.pk).state == JOB_CANCELLED
        assert ScriptedJob.objects.get(pk=job.pk).hook_calls[-1] == "on_cancelled"
        assert not reap(now=timezone.now() + timedelta(days=1)).dispatched
        assert Job.objects.get(pk=job.pk).state == JOB_CANCELLED
        JobHandler.create_and_start(user, "test_flaky_backoff", steps=2)  # the slot is free again
    finally:
        BackoffType.max_count = 100


# ── 4. Where the next attempt is dispatched from ───────────────────────────────


@override_settings(TASK_FERRY={"EXECUTOR": _executor(DelayingExecutor)})
def test_an_executor_with_delay_gets_the_next_attempt_at_once_with_run_after(transactional_db):
    job = JobHandler.create_and_start(None, "test_flaky_backoff", steps=2)
    first_task = Job.objects.get(pk=job.pk).executor_task_id
    assert len(RecordingExecutor.submitted) == 1

    assert run_job(job.pk).outcome == JOB_RETRYING
    row = Job.objects.get(pk=job.pk)
    assert row.state == JOB_RETRYING
    assert len(RecordingExecutor.submitted) == 2
    second = RecordingExecutor.submitted[1]
    assert second.job_id == job.pk and second.run_after == row.run_after
    # A fresh engine id, so the engine can tell the attempts apart (revoke, kill).
    assert second.task_id == row.executor_task_id != first_task
    # The reaper leaves it to the engine: not due plus HEARTBEAT_TIMEOUT yet.
    assert not reap(now=row.run_after + timedelta(seconds=1)).dispatched

    Job.objects.filter(pk=job.pk).update(run_after=timezone.now() - timedelta(seconds=1))  # the engine's delay passed
    assert run_job(job.pk).outcome == JOB_FINISHED


@override_settings(TASK_FERRY={"EXECUTOR": _executor(RecordingExecutor)})
def test_no_delay_support_and_backoff_zero_dispatches_at_once(transactional_db):
    job = JobHandler.create_and_start(None, "test_flaky", steps=2)
    assert run_job(job.pk).outcome == JOB_RETRYING
    assert Job.objects.get(pk=job.pk).state == JOB_PENDING
    assert [d.job_id for d in RecordingExecutor.submitted] == [job.pk, job.pk]
    assert RecordingExecutor.submitted[1].run_after is None
    assert run_job(job.pk).outcome == JOB_FINISHED


@override_settings(TASK_FERRY={"EXECUTOR": _executor(RefusingExecutor)})
def test_a_refused_retry_dispatch_is_left_to_the_reaper(transactional_db):
    job = JobHandler.create_and_start(None, "test_flaky", steps=2)
    assert run_job(job.pk).outcome == JOB_RETRYING
    # Not pending with no run scheduled: retrying, due now, for the reaper.
    row = Job.objects.get(pk=job.pk)
    assert row.state == JOB_RETRYING and row.run_after <= timezone.now()


@pytest.mark.postgres
@override_settings(TASK_FERRY={"EXECUTOR": _executor(RecordingExecutor)})
def test_racing_reapers_dispatch_each_due_retry_once(transactional_db):
    """Executor without delay support: 20 jobs wait ``retrying``; 8 reapers run at
    the same moment, each on its own connection; every job is dispatched once."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (row-level concurrency between many writers); run with FERRY_TEST_DB=postgres")
    jobs = JobHandler.create_many(None, "test_flaky_backoff", [{"steps": 2}] * 20)
    for job in jobs:
        assert run_job(job.pk).outcome == JOB_RETRYING
    RecordingExecutor.submitted = []
    due = timezone.now() + timedelta(seconds=31)
    barrier = threading.Barrier(8)
    results: list = []

    def reaper():
        try:
            barrier.wait(10)
            results.append(reap(now=due))
        finally:
            connection.close()
            conf.reset()

    threads = [threading.Thread(target=reaper) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    dispatched = sorted(pk for r in results for pk in r.dispatched)
    assert dispatched == sorted(j.pk for j in jobs)
    assert sorted(d.job_id for d in RecordingExecutor.submitted) == dispatched
    assert set(Job.objects.filter(pk__in=dispatched).values_list("state", flat=True)) == {JOB_PENDING}


def test_manual_retry_after_automatic_ones_runs_once_more(db):
    """``JobHandler.retry`` of a job that used up its attempts: one more attempt,
    numbered after the others, not retried automatically again."""
    with override_settings(TASK_FERRY={"EXECUTOR": {"BACKEND": "immediate", "OPTIONS": {"RAISE_EXCEPTIONS": False}}}):
        job = JobHandler.create_and_start(None, "test_flaky", steps=10)
        JobHandler.retry(job.pk)
    row = ScriptedJob.objects.get(pk=job.pk)
    assert (row.state, row.attempts, row.error_code) == (JOB_FAILED, 4, ERROR_EXCEPTION)
    assert [a[0] for a in _attempts(job)] == [1, 2, 3, 4]
    assert uuid.UUID(row.executor_task_id)


@override_settings(TASK_FERRY={"EXECUTOR": _executor(DelayingExecutor)})
def test_a_cancel_that_wins_over_a_failed_attempt_cancels_the_retry(transactional_db):
    """Cancelled while running, then the body raises: the job stays cancelled, its
    ``on_cancelled`` runs, and no next attempt is scheduled or dispatched."""
    job = JobHandler.create_and_start(None, "test_flaky_backoff", steps=2)

    def cancel_it(sender, job, **kwargs):
        JobHandler.cancel(None, job.pk)

    signals.job_started.connect(cancel_it)
    try:
        assert run_job(job.pk).outcome == JOB_CANCELLED
    finally:
        signals.job_started.disconnect(cancel_it)
    row = ScriptedJob.objects.get(pk=job.pk)
    assert row.state == JOB_CANCELLED and row.hook_calls == ["on_cancelled", "after_run"]
    assert len(RecordingExecutor.submitted) == 1  # the first dispatch only
    assert not reap(now=timezone.now() + timedelta(days=1))
