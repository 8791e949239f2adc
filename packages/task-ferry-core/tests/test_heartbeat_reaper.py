"""Heartbeats and the reaper: nothing stays ``started`` forever.

1. The claim writes the first heartbeat; progress flushes beat at most once per
   ``HEARTBEAT_INTERVAL`` (never once per flush); a job that reports no
   progress is kept alive by the background thread, which stops with the job.
2. The reaper ends a ``started`` job whose heartbeat is older than
   ``HEARTBEAT_TIMEOUT``: ``failed``, error "worker lost", ``error_code =
   "worker_lost"``, hooks and signals, last progress kept, store cleared; or
   its next attempt under the retry policy. Fresh jobs are left alone.
3. Reapers racing each other end each job once (PostgreSQL, 8 threads).
4. A real worker process killed with SIGKILL mid-job is recovered within the
   heartbeat limit; the time from ``kill -9`` to recovery is measured.
5. A worker that was given up on stops at its next flush and overwrites nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection, connections
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from ferry_core_testproject.testapp.models import ScriptedJob

from task_ferry import conf, heartbeat
from task_ferry.checks import check_settings
from task_ferry.conf import get_progress_store
from task_ferry.exceptions import WorkerLost
from task_ferry.executors.base import BaseExecutor
from task_ferry.handler import JobHandler
from task_ferry.models import Job, JobAttempt
from task_ferry.protocols import Snapshot
from task_ferry.reaper import reap
from task_ferry.registry import JobType, job_type_registry
from task_ferry.runner import run_job
from task_ferry.states import ERROR_WORKER_LOST, JOB_FAILED, JOB_FINISHED, JOB_PENDING, JOB_RETRYING, JOB_STARTED
from task_ferry.testing.subprocess import bootstrap_args, child_env


class ParkingExecutor(BaseExecutor):
    """Accepts every dispatch and runs nothing: tests run jobs with ``run_job``."""

    supports_defer_on_commit = True
    out_of_process = True
    submitted: list = []

    def submit(self, dispatch):
        ParkingExecutor.submitted.append(dispatch)
        return None


LIVELY = {
    "EXECUTOR": f"{__name__}.ParkingExecutor",
    "PROGRESS_STORE": "database",
    "PROGRESS_FLUSH_INTERVAL": 0.02,
    "HEARTBEAT_INTERVAL": 0.3,
    "HEARTBEAT_TIMEOUT": 1.5,
}


class Silent(JobType):
    """Sleeps ``step_sleep`` seconds and never reports progress."""

    type = "test_silent"
    model_class = ScriptedJob
    max_count = 100

    def run(self, job, progress):
        time.sleep(job.step_sleep)


@pytest.fixture(autouse=True)
def lively(settings):
    settings.TASK_FERRY = LIVELY
    ParkingExecutor.submitted = []
    job_type_registry.register(Silent())
    yield
    job_type_registry.unregister("test_silent")
    conf.reset()


def _stale(job, seconds: float = 60, **fields) -> None:
    """A job whose worker stopped beating ``seconds`` ago."""
    then = timezone.now() - timedelta(seconds=seconds)
    values = {"state": JOB_STARTED, "attempts": 1, "started_at": then, "heartbeat_at": then, "updated_at": then}
    Job.objects.filter(pk=job.pk).update(**{**values, **fields})


def _new(**fields) -> ScriptedJob:
    return JobHandler.create_and_start(None, "scripted", **fields)


def _beat_updates(queries) -> list[str]:
    # The flush's beat sets heartbeat_at alone; the claim sets it with started_at.
    return [
        q["sql"]
        for q in queries
        if q["sql"].startswith("UPDATE") and "heartbeat_at" in q["sql"] and "started_at" not in q["sql"]
    ]


# ── 1. Writing heartbeats ──────────────────────────────────────────────────────


def test_claim_beats_and_flushes_beat_at_most_once_per_interval(transactional_db):
    job = _new(steps=60, step_sleep=0.02)  # ~1.2 s, ~60 flushes
    before = timezone.now()
    started = time.monotonic()
    with CaptureQueriesContext(connection) as ctx:
        result = run_job(job.pk)
    elapsed = time.monotonic() - started
    assert result.outcome == JOB_FINISHED
    # The claim is an UPDATE, or on PostgreSQL a WITH ... (UPDATE ... RETURNING *) SELECT.
    claim = [q["sql"] for q in ctx.captured_queries if "UPDATE" in q["sql"] and '"started_at" = ' in q["sql"]]
    assert "heartbeat_at" in claim[0]
    beats = _beat_updates(ctx.captured_queries)
    # One per 0.3 s of run time, give or take one; far fewer than the flushes.
    expected = elapsed / 0.3
    assert expected - 1.5 <= len(beats) <= expected + 1, (len(beats), elapsed)
    assert result.store_writes > 5 * len(beats), result.store_writes
    # Guarded by the attempt, so a later attempt's row is never touched.
    assert all('"attempts" = 1' in sql and "'started'" in sql for sql in beats)
    assert Job.objects.get(pk=job.pk).heartbeat_at > before


def test_a_job_without_progress_is_kept_alive_by_the_background_beat(transactional_db):
    job = JobHandler.create_and_start(None, "test_silent", step_sleep=1.5)

    def work():
        try:
            run_job(job.pk)
        finally:
            connections.close_all()

    thread = threading.Thread(target=work)
    thread.start()
    seen = set()
    while thread.is_alive():
        value = Job.objects.filter(pk=job.pk).values_list("heartbeat_at", flat=True).get()
        if value is not None:
            seen.add(value)
        time.sleep(0.05)
    thread.join()
    # The claim's beat plus about one per 0.3 s from the thread.
    assert len(seen) >= 4, seen
    assert heartbeat.running() == 0
    last = Job.objects.get(pk=job.pk).heartbeat_at
    time.sleep(0.7)
    assert Job.objects.get(pk=job.pk).heartbeat_at == last  # the beat stopped with the job


# ── 2. The reaper ──────────────────────────────────────────────────────────────


def test_reaper_fails_a_job_whose_heartbeat_stopped(transactional_db, failures):
    lost, fresh = _new(), _new()
    _stale(lost)
    Job.objects.filter(pk=fresh.pk).update(state=JOB_STARTED, attempts=1, heartbeat_at=timezone.now())
    store = get_progress_store()
    store.write(Snapshot(lost.pk, JOB_STARTED, 40, "halfway", time.time()))

    result = reap()
    assert result.lost == [lost.pk] and not result.retried
    row = ScriptedJob.objects.get(pk=lost.pk)
    assert (row.state, row.error, row.error_code) == (JOB_FAILED, "worker lost", ERROR_WORKER_LOST)
    assert (row.progress_percentage, row.progress_state) == (40, "halfway")  # how far it got
    assert row.finished_at is not None
    assert row.hook_calls == ["on_error", "after_run"]
    assert isinstance(failures[0][1], WorkerLost) and failures[0][0] == lost.pk
    attempt = JobAttempt.objects.get(job_id=lost.pk)
    assert (attempt.number, attempt.outcome, attempt.error) == (1, "worker_lost", "worker lost")
    assert store.read_many([lost.pk]) == {}
    assert Job.objects.get(pk=fresh.pk).state == JOB_STARTED
    assert not reap()  # nothing left to do


def test_reaper_handles_started_rows_from_before_heartbeats(transactional_db):
    """0.1.1 rows have no heartbeat: their last change stands in for it."""
    old, recent = _new(), _new()
    _stale(old, heartbeat_at=None)
    Job.objects.filter(pk=recent.pk).update(state=JOB_STARTED, heartbeat_at=None, updated_at=timezone.now())
    assert reap().lost == [old.pk]
    assert Job.objects.get(pk=recent.pk).state == JOB_STARTED


def test_reaper_retries_a_lost_job_under_its_policy(transactional_db):
    job = _new(max_attempts=2, steps=1)
    _stale(job)
    result = reap()
    assert result.lost == result.retried == [job.pk]
    row = Job.objects.get(pk=job.pk)
    assert row.state in (JOB_RETRYING, JOB_PENDING)  # scripted: backoff up to 2 s, jittered
    assert (row.error, row.error_code) == ("worker lost", ERROR_WORKER_LOST)
    reap(now=timezone.now() + timedelta(seconds=3))
    assert Job.objects.get(pk=job.pk).state == JOB_PENDING
    assert ParkingExecutor.submitted[-1].job_id == job.pk
    assert run_job(job.pk).outcome == JOB_FINISHED
    assert list(JobAttempt.objects.filter(job_id=job.pk).values_list("outcome", flat=True)) == [
        "worker_lost",
        "finished",
    ]


@pytest.mark.postgres
def test_racing_reapers_end_each_lost_job_once(transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (row-level concurrency between many writers); run with FERRY_TEST_DB=postgres")
    jobs = [JobHandler.create_and_start(None, "test_silent") for _ in range(20)]
    for job in jobs:
        _stale(job)
    barrier = threading.Barrier(8)
    results: list = []

    def reaper():
        try:
            barrier.wait(10)
            results.append(reap())
        finally:
            connection.close()

    threads = [threading.Thread(target=reaper) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(pk for r in results for pk in r.lost) == sorted(j.pk for j in jobs)
    assert JobAttempt.objects.filter(job_id__in=[j.pk for j in jobs]).count() == 20
    assert set(Job.objects.filter(pk__in=[j.pk for j in jobs]).values_list("state", flat=True)) == {JOB_FAILED}


def test_ferry_reap_command(transactional_db):
    job = _new()
    _stale(job)
    out = StringIO()
    call_command("ferry", "reap", "--json", stdout=out)
    assert json.loads(out.getvalue()) == {
        "lost": [job.pk],
        "timed_out": [],
        "retried": [],
        "killed": [],
        "dispatched": [],
        "recovered": [],
    }
    out = StringIO()
    call_command("ferry", "reap", stdout=out)
    assert out.getvalue().startswith("Reaped 0 job(s) with a lost worker")


def test_heartbeat_timeout_must_exceed_the_interval():
    with override_settings(TASK_FERRY={"HEARTBEAT_INTERVAL": 30, "HEARTBEAT_TIMEOUT": 30}):
        errors = [e for e in check_settings() if e.id == "task_ferry.E004"]
    assert len(errors) == 1 and "HEARTBEAT_TIMEOUT" in errors[0].msg
    with override_settings(TASK_FERRY={"HEARTBEAT_INTERVAL": 0}):
        assert any("HEARTBEAT_INTERVAL" in e.msg for e in check_settings() if e.id == "task_ferry.E004")


# ── 4. A real worker, killed ───────────────────────────────────────────────────


@pytest.mark.integration
def test_worker_killed_with_sigkill_is_recovered_within_the_heartbeat_limit(transactional_db):
    job = _new(steps=400, step_sleep=0.05)  # 20 s of work
    code = "import sys; from task_ferry.runner import run_job; run_job(int(sys.argv[1]))"
    worker = subprocess.Popen(bootstrap_args("-c", code, str(job.pk)), env=child_env(), start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not ScriptedJob.objects.filter(pk=job.pk, state=JOB_STARTED, progress_percentage__gte=0).exists():
            assert worker.poll() is None, "the worker exited before it started the job"
            assert time.monotonic() < deadline, "the worker did not start the job"
            time.sleep(0.05)
        time.sleep(0.5)  # mid-job, with heartbeats written
        os.kill(worker.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        worker.wait(10)
        while Job.objects.get(pk=job.pk).state == JOB_STARTED:
            reap()
            assert time.monotonic() - killed_at < 10, "the reaper did not recover the job"
            time.sleep(0.1)
        recovered = time.monotonic() - killed_at
    finally:
        if worker.poll() is None:
            worker.kill()
    row = Job.objects.get(pk=job.pk)
    assert (row.state, row.error_code) == (JOB_FAILED, ERROR_WORKER_LOST)
    # Within HEARTBEAT_TIMEOUT (1.5 s) of the last beat, which is at most one interval (0.3 s) old.
    assert recovered < 1.5 + 0.3 + 0.5, recovered
    print(f"kill -9 to recovery: {recovered:.2f}s (HEARTBEAT_TIMEOUT 1.5s, HEARTBEAT_INTERVAL 0.3s)")


# ── 5. A worker that was given up on ───────────────────────────────────────────


def test_a_worker_given_up_on_stops_at_its_next_flush_and_overwrites_nothing(transactional_db):
    job = _new(steps=200, step_sleep=0.02)  # 4 s of work
    outcome: dict = {}

    def work():
        try:
            outcome["result"] = run_job(job.pk)
        finally:
            connections.close_all()

    thread = threading.Thread(target=work)
    thread.start()
    while not Job.objects.filter(pk=job.pk, state=JOB_STARTED).exists():
        time.sleep(0.02)
    time.sleep(0.2)
    # A reaper that believes the worker dead (its clock says the heartbeat is old).
    assert reap(now=timezone.now() + timedelta(seconds=10)).lost == [job.pk]
    reaped_at = time.monotonic()
    thread.join(10)
    assert time.monotonic() - reaped_at < 0.3 + 0.5  # its next beat told it
    row = ScriptedJob.objects.get(pk=job.pk)
    assert (row.state, row.error_code) == (JOB_FAILED, ERROR_WORKER_LOST)
    assert row.finished_at is not None and row.result is None
    # The reaper ran the failure hooks; the stopped worker only its after_run (it ran before_run).
    assert row.hook_calls == ["on_error", "after_run", "after_run"]
    assert JobAttempt.objects.get(job_id=job.pk).outcome == "worker_lost"
