"""Core's lifecycle guarantees, proven on real databases with real threads.

1. A terminal state is never overwritten: not by a transition, a ``mark_*``,
   the runner's finish path, nor a plain ``job.save()``.
2. The same job delivered twice concurrently runs its body once (PostgreSQL).
3. Cancel racing finish ends in one state that the record, the progress store
   and the hooks agree on (PostgreSQL; ``database`` and ``cache`` stores).
4. ``max_count`` holds with 20 concurrent creators (PostgreSQL and SQLite).

Concurrency tests use ``transactional_db`` (threads only see committed rows),
one Django connection per thread (closed when the thread ends) and a
``threading.Barrier`` to release the threads together.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from ferry_core_testproject.testapp.models import ScriptedJob

from task_ferry import conf, signals
from task_ferry.conf import get_progress_store
from task_ferry.exceptions import JobNotCancellable, MaxJobCountExceeded
from task_ferry.executors.base import BaseExecutor
from task_ferry.handler import JobHandler
from task_ferry.models import LIFECYCLE_FIELDS, Job
from task_ferry.runner import SKIPPED, run_job
from task_ferry.states import (
    ALL_STATES,
    JOB_CANCELLED,
    JOB_FAILED,
    JOB_FINISHED,
    JOB_PENDING,
    JOB_STARTED,
    JOB_STATES_ENDED,
    JOB_STATES_PENDING_OR_RUNNING,
)
from task_ferry.stores.database import DatabaseProgressStore


class ParkingExecutor(BaseExecutor):
    """Accepts every dispatch and runs nothing, so jobs stay pending until a test
    runs them with ``run_job``. Deferred to commit like a real broker executor."""

    supports_defer_on_commit = True
    out_of_process = True
    submitted: list = []

    def submit(self, dispatch):
        ParkingExecutor.submitted.append(dispatch)
        return None


PARKING = f"{__name__}.ParkingExecutor"


@pytest.fixture
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (row-level concurrency between many writers); run with FERRY_TEST_DB=postgres")


@pytest.fixture
def parked():
    """Jobs are created pending and never dispatched to a worker."""
    ParkingExecutor.submitted = []
    with override_settings(TASK_FERRY={"EXECUTOR": PARKING, "PROGRESS_STORE": "database"}):
        yield


@pytest.fixture
def release_connections():
    """Close the connections the progress store opened in worker threads."""
    yield
    conf.reset()


def _new_job(**fields) -> ScriptedJob:
    return JobHandler.create_and_start(None, "scripted", **fields)


def _lifecycle_row(pk: int) -> dict:
    return Job._base_manager.filter(pk=pk).values(*sorted(LIFECYCLE_FIELDS), "updated_at").get()


class _Lockstep:
    """``n`` worker threads, each on its own Django connection, that run
    ``fn(i, arg)`` together each time the main thread calls :meth:`step`.

    The threads live across steps, so their connections (and the progress
    store's per-thread connections) are opened once: step timings are then the
    work itself, not connection set-up."""

    def __init__(self, n: int, fn) -> None:
        self.fn = fn
        self.arg = None
        self.stopping = False
        self.results: list = [None] * n
        self.barrier = threading.Barrier(n + 1)
        self.threads = [threading.Thread(target=self._work, args=(i,), daemon=True) for i in range(n)]
        for t in self.threads:
            t.start()

    def _work(self, i: int) -> None:
        try:
            while True:
                self.barrier.wait(timeout=60)
                if self.stopping:
                    return
                try:
                    self.results[i] = self.fn(i, self.arg)
                except BaseException as exc:  # handed to the test, which inspects it
                    self.results[i] = exc
                self.barrier.wait(timeout=60)
        except threading.BrokenBarrierError:
            pass  # the test failed and aborted the barrier; just end
        finally:
            connection.close()

    def step(self, arg=None) -> list:
        """Release the workers on ``arg`` and return their results once all are done."""
        self.arg = arg
        self.results = [None] * len(self.threads)
        self.barrier.wait(timeout=60)  # start
        self.barrier.wait(timeout=60)  # end
        return list(self.results)

    def close(self) -> None:
        self.stopping = True
        self.barrier.wait(timeout=60)
        for t in self.threads:
            t.join(timeout=60)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()
        else:
            self.barrier.abort()


# ── 1. A terminal state is never overwritten ───────────────────────────────────


def _end(job: ScriptedJob, state: str) -> None:
    Job._base_manager.filter(pk=job.pk).update(
        state=state,
        error="original error" if state == JOB_FAILED else "",
        progress_percentage=42,
        progress_state="where it ended",
        finished_at=timezone.now() - timedelta(minutes=5),
        updated_at=timezone.now() - timedelta(minutes=5),
    )


@pytest.mark.parametrize("ended", JOB_STATES_ENDED)
def test_ended_job_survives_every_transition(db, parked, ended):
    """Every transition and ``mark_*`` is a compare-and-set from a live state, so
    on an ended job each one reports False / 0 and writes nothing, even when the
    caller's in-memory instance still believes the job is live."""
    job = _new_job(steps=1)
    stale = ScriptedJob.objects.get(pk=job.pk)  # loaded while pending
    _end(job, ended)
    before = _lifecycle_row(job.pk)

    attempts = {
        "mark_started": lambda j: j.mark_started(),
        "mark_finished": lambda j: j.mark_finished(),
        "mark_failed": lambda j: j.mark_failed("late failure"),
        "mark_cancelled": lambda j: j.mark_cancelled(),
    }
    for name, call in attempts.items():
        for instance in (stale, Job._base_manager.get(pk=job.pk), ScriptedJob._base_manager.get(pk=job.pk)):
            instance.state = JOB_STARTED  # what a stale worker believes
            assert call(instance) is False, f"{name} moved an ended ({ended}) job"
            assert instance.state == ended, f"{name} left the instance believing {instance.state!r}"
            assert _lifecycle_row(job.pk) == before, f"{name} wrote to an ended ({ended}) job"

    for to_state in ALL_STATES:
        assert Job.objects.filter(pk=job.pk).transition(JOB_STATES_PENDING_OR_RUNNING, to_state) == 0
        assert ScriptedJob.objects.filter(pk=job.pk).transition(JOB_STATES_PENDING_OR_RUNNING, to_state) == 0
    assert _lifecycle_row(job.pk) == before

    assert run_job(job.pk).outcome == SKIPPED
    if ended == JOB_CANCELLED:
        assert JobHandler.cancel(None, job.pk).state == JOB_CANCELLED  # idempotent
    else:
        with pytest.raises(JobNotCancellable, match=ended):
            JobHandler.cancel(None, job.pk)
    assert _lifecycle_row(job.pk) == before
    assert ScriptedJob.objects.get(pk=job.pk).body_runs == 0


@pytest.mark.parametrize("run_fails", [False, True], ids=["body-returns", "body-raises"])
@pytest.mark.parametrize("ended", JOB_STATES_ENDED)
def test_runner_finish_path_keeps_a_state_set_while_running(db, parked, ended, run_fails):
    """Someone else ends the job while its body runs; when the body returns (or
    raises), the runner's compare-and-set from ``started`` loses and the other
    party's state, error and timestamps stay. Only a cancel gets the job's last
    progress recorded, and only a cancel gets ``on_cancelled`` (once)."""
    job = _new_job(steps=3, fail_with="body error" if run_fails else "")
    seen: list = []

    def end_it_elsewhere(sender, job, **kwargs):
        other = Job._base_manager.get(pk=job.pk)
        if ended == JOB_FINISHED:
            other.mark_finished()
        elif ended == JOB_FAILED:
            other.mark_failed("ended elsewhere")
        else:
            other.mark_cancelled()
        seen.append(_lifecycle_row(job.pk))

    signals.job_started.connect(end_it_elsewhere)
    try:
        result = run_job(job.pk)
    finally:
        signals.job_started.disconnect(end_it_elsewhere)

    after = _lifecycle_row(job.pk)
    assert result.outcome == ended
    assert after["state"] == ended
    progress_fields = {"progress_percentage", "progress_state", "updated_at"}
    for field in LIFECYCLE_FIELDS - progress_fields:
        assert after[field] == seen[0][field], f"runner overwrote {field} of a job ended as {ended}"
    if ended == JOB_FAILED:
        assert after["error"] == "ended elsewhere"
    if ended == JOB_CANCELLED:
        assert after["progress_percentage"] == 100 and after["progress_state"] == "step 3"
    else:
        assert (after["progress_percentage"], after["progress_state"]) == (
            seen[0]["progress_percentage"],
            seen[0]["progress_state"],
        )
    hooks = ScriptedJob.objects.get(pk=job.pk).hook_calls
    assert hooks.count("on_cancelled") == (1 if ended == JOB_CANCELLED else 0)
    assert get_progress_store().read_many([job.pk]) == {}


def test_plain_save_never_writes_lifecycle_fields(db, parked):
    """``job.save()`` on an existing job writes the type's own fields and leaves
    every field in ``LIFECYCLE_FIELDS`` as it is in the database, whatever the
    instance holds; naming a lifecycle field in ``update_fields`` writes it."""
    job = _new_job(steps=2)
    ScriptedJob._base_manager.filter(pk=job.pk).update(state=JOB_CANCELLED)
    before = _lifecycle_row(job.pk)
    changed = {
        "state": JOB_FINISHED,
        "progress_percentage": 77,
        "progress_state": "in memory only",
        "error": "in memory only",
        "human_readable_error": "in memory only",
        "started_at": timezone.now() - timedelta(days=1),
        "finished_at": timezone.now() - timedelta(days=1),
        "attempts": 9,
        "result": {"in": "memory"},
        "executor_task_id": "in-memory-only",
        "heartbeat_at": timezone.now() - timedelta(days=1),
        "error_code": "in-memory-only",
    }
    # If a lifecycle field is added, this test must learn its in-memory value.
    assert set(changed) == set(LIFECYCLE_FIELDS)

    for instance in (job, Job._base_manager.get(pk=job.pk)):
        for name, value in changed.items():
            setattr(instance, name, value)
        if isinstance(instance, ScriptedJob):
            instance.steps = 5
        instance.priority = 7
        instance.save()
        row = _lifecycle_row(job.pk)
        for name in LIFECYCLE_FIELDS:
            assert row[name] == before[name], f"save() wrote lifecycle field {name}"

    stored = ScriptedJob.objects.get(pk=job.pk)
    assert (stored.steps, stored.priority, stored.state) == (5, 7, JOB_CANCELLED)

    job.save(update_fields=["progress_state"])
    assert _lifecycle_row(job.pk)["progress_state"] == "in memory only"
    assert _lifecycle_row(job.pk)["state"] == JOB_CANCELLED


# ── 2. Duplicate delivery runs once ────────────────────────────────────────────


@pytest.mark.postgres
def test_same_job_delivered_ten_times_at_once_runs_once(postgres_only, transactional_db, parked, release_connections):
    """10 threads call ``run_job`` with the same id at the same moment, for 20
    jobs: each job's body runs once, one call reports ``finished`` and the other
    nine ``skipped``."""
    deliveries = 10
    with _Lockstep(deliveries, lambda i, pk: run_job(pk, "scripted").outcome) as threads:
        for _ in range(20):
            job = _new_job(steps=2)
            outcomes = threads.step(job.pk)
            assert Counter(outcomes) == {JOB_FINISHED: 1, SKIPPED: deliveries - 1}, outcomes
            row = ScriptedJob.objects.get(pk=job.pk)
            assert (row.body_runs, row.attempts, row.state) == (1, 1, JOB_FINISHED)


# ── 3. Cancel racing finish ────────────────────────────────────────────────────


class _SignalLog:
    """Records (signal, job id) for the outcome signals, from any thread."""

    NAMES = ("job_finished", "job_failed", "job_cancelled")

    def __init__(self) -> None:
        self.events: list = []
        self.lock = threading.Lock()
        self.receivers = {name: self._receiver(name) for name in self.NAMES}

    def _receiver(self, name: str):
        def receiver(sender, job, **kwargs):
            with self.lock:
                self.events.append((name, job.pk))

        return receiver

    def of(self, pk: int) -> Counter:
        with self.lock:
            return Counter(name for name, job_pk in self.events if job_pk == pk)

    def __enter__(self):
        for name, receiver in self.receivers.items():
            getattr(signals, name).connect(receiver)
        return self

    def __exit__(self, *exc) -> None:
        for name, receiver in self.receivers.items():
            getattr(signals, name).disconnect(receiver)


def _assert_cancel_and_finish_agree(where: str, accepted: bool, run, job: ScriptedJob, signal_log: _SignalLog) -> None:
    """The record, the store and the hooks tell the same story about one job."""
    mine = signal_log.of(job.pk)
    if accepted:
        assert job.state == JOB_CANCELLED, where
        assert job.hook_calls.count("on_cancelled") == 1, (where, job.hook_calls)
        assert "on_error" not in job.hook_calls, where
        assert mine == {"job_cancelled": 1}, (where, mine)
        assert run.outcome in (JOB_CANCELLED, SKIPPED), (where, run.outcome)
    else:
        assert job.state == JOB_FINISHED, where
        assert job.progress_percentage == 100, where
        assert "on_cancelled" not in job.hook_calls, where
        assert mine == {"job_finished": 1}, (where, mine)
        assert run.outcome == JOB_FINISHED, where
    assert job.body_runs <= 1, where
    assert get_progress_store().read_many([job.pk]) == {}, f"{where}: store entry left behind"


@pytest.mark.postgres
@pytest.mark.parametrize("store", ["database", "cache"])
def test_cancel_racing_finish_ends_consistently(postgres_only, transactional_db, release_connections, store):
    """``JobHandler.cancel`` lands around the moment the job finishes, at offsets
    swept from mid-run to just after its end. In every trial record, store and
    hooks agree: an accepted cancel means the job ended cancelled, with
    ``on_cancelled`` and ``job_cancelled`` exactly once and no finished/failed
    signal; a refused cancel (``JobNotCancellable``) means it ended finished. The
    store never keeps an entry for an ended job."""
    settings = {
        "EXECUTOR": PARKING,
        "PROGRESS_STORE": store,
        # Short, so some cancels are noticed by the body and others only by the record step.
        "PROGRESS_FLUSH_INTERVAL": 0.002,
    }

    def act(i: int, arg):
        pk, offset = arg
        begin = time.perf_counter()
        if i == 0:
            return run_job(pk, "scripted"), time.perf_counter() - begin
        # time.sleep, not a busy-wait: spinning holds the GIL and slows the job (distorting the sweep).
        time.sleep(offset)
        try:
            JobHandler.cancel(None, pk)
            return True
        except JobNotCancellable:
            return False

    trials = 40
    counts: Counter = Counter()
    with override_settings(TASK_FERRY=settings), _SignalLog() as signal_log, _Lockstep(2, act) as threads:

        def trial(offset: float):
            job = _new_job(steps=4, step_sleep=0.003)
            results = threads.step((job.pk, offset))
            for r in results:
                assert not isinstance(r, BaseException), r
            (run, elapsed), accepted = results
            return accepted, run, ScriptedJob.objects.get(pk=job.pk), elapsed

        # Warm-up runs with the cancel long after the end; they time the job.
        duration = sorted(trial(0.2)[3] for _ in range(3))[1]
        # A staircase: start mid-run, step later after an accepted cancel and earlier
        # after a refused one, so most trials land right at the finish.
        offset, step = duration * 0.3, duration / 25
        for n in range(trials):
            accepted, run, job, _ = trial(offset)
            counts["accepted" if accepted else "refused"] += 1
            counts[job.state] += 1
            where = f"trial {n} (offset {offset * 1000:.1f} ms, store {store})"
            offset = max(0.0, offset + (step if accepted else -step))
            _assert_cancel_and_finish_agree(where, accepted, run, job, signal_log)
            # The closest calls: the body had returned, but the cancel committed first.
            counts["cancel won after the body returned"] += accepted and job.progress_percentage == 100

    print(
        f"\ncancel racing finish ({store} store, {trials} trials, job ~{duration * 1000:.1f} ms): "
        f"accepted cancels {counts['accepted']}, ended cancelled {counts[JOB_CANCELLED]}, "
        f"ended finished {counts[JOB_FINISHED]} (cancelled after the body returned: "
        f"{counts['cancel won after the body returned']})"
    )
    assert counts["accepted"] == counts[JOB_CANCELLED]
    assert counts["refused"] == counts[JOB_FINISHED]
    # The sweep must straddle the end, or it proves nothing about the race.
    assert counts[JOB_CANCELLED] > 0 and counts[JOB_FINISHED] > 0, counts


class SlowCancelStore(DatabaseProgressStore):
    """The database store, with ``request_cancel`` arriving 0.2 s late (a slow
    network, or the cancelling thread losing the CPU right after its commit)."""

    def request_cancel(self, job_id: int) -> None:
        time.sleep(0.2)
        super().request_cancel(job_id)


@pytest.mark.parametrize(
    "steps,flag_arrives", [(2, "after the job ended"), (12, "while the job still runs")], ids=["late", "in-time"]
)
def test_slow_cancel_request_still_ends_consistently(transactional_db, release_connections, steps, flag_arrives):
    """The race above with one side slowed down so a given order happens every
    time: the cancel's request to the store takes 0.2 s, and the job (30 ms per
    step) ends before or after it lands. Either way record, store and hooks agree
    and no store entry outlives the job."""
    settings = {
        "EXECUTOR": PARKING,
        "PROGRESS_STORE": f"{__name__}.SlowCancelStore",
        "PROGRESS_FLUSH_INTERVAL": 0.01,
    }

    def act(i: int, pk: int):
        if i == 0:
            return run_job(pk, "scripted")
        time.sleep(0.015)
        try:
            JobHandler.cancel(None, pk)
            return True
        except JobNotCancellable:
            return False

    with override_settings(TASK_FERRY=settings), _SignalLog() as signal_log, _Lockstep(2, act) as threads:
        job = _new_job(steps=steps, step_sleep=0.03)
        run, accepted = threads.step(job.pk)
        assert not isinstance(run, BaseException) and not isinstance(accepted, BaseException), (run, accepted)
        job = ScriptedJob.objects.get(pk=job.pk)
        _assert_cancel_and_finish_agree(f"flag arrives {flag_arrives}", accepted, run, job, signal_log)


# ── 4. max_count under concurrent creators ─────────────────────────────────────


def test_max_count_holds_with_twenty_concurrent_creators(transactional_db, parked):
    """20 threads, each on its own connection, create a ``scripted`` job
    (``max_count = 3``) for the same user at once: exactly 3 are created and 17
    get ``MaxJobCountExceeded``. Repeated for five users. Runs on PostgreSQL
    (advisory lock) and SQLite (database write lock)."""
    User = get_user_model()
    with _Lockstep(20, lambda i, user: JobHandler.create_and_start(user, "scripted", steps=1)) as threads:
        for round_ in range(5):
            user = User.objects.create_user(f"creator{round_}")
            results = threads.step(user)
            created = [r for r in results if isinstance(r, Job)]
            refused = [r for r in results if isinstance(r, MaxJobCountExceeded)]
            other = [r for r in results if not isinstance(r, Job | MaxJobCountExceeded)]
            assert not other, other
            assert (len(created), len(refused)) == (3, 17)
            assert ScriptedJob.objects.filter(user=user).count() == 3
            assert Job.objects.filter(user=user, state=JOB_PENDING).count() == 3
            dispatched = {d.job_id for d in ParkingExecutor.submitted}
            assert {j.pk for j in created} <= dispatched
