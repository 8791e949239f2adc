"""``ExecutorConformance``: the behaviour every executor plugin must show.

A plugin's whole conformance file::

    import pytest
    from task_ferry.testing.executor import ExecutorConformance
    from task_ferry.testing.subprocess import bootstrap_args, running

    @pytest.mark.integration
    class TestRQExecutor(ExecutorConformance):
        @pytest.fixture
        def executor_setting(self):
            return {"BACKEND": "rq", "OPTIONS": {"URL": "redis://127.0.0.1:6379/14"}}

        @pytest.fixture
        def ferry_worker(self):
            with running(bootstrap_args("-m", "rq.cli", "worker", "default", "ferry_conformance_b", ...)) as worker:
                yield worker

Fixtures a subclass provides:

``executor_setting`` (required)
    The ``TASK_FERRY["EXECUTOR"]`` value under test. The kit applies it (and
    ``progress_store_setting``) with pytest-django's ``settings`` before
    anything else, so the handler, the ``executor`` fixture and every child
    process built with :func:`task_ferry.testing.subprocess.child_env` agree.
``ferry_worker`` (required when ``out_of_process``)
    Starts the engine's worker(s) for one test and stops them after; requested
    after the settings are applied and only by tests that are not skipped.
    The worker must consume the default queue and :attr:`extra_queue`, never
    :attr:`unserved_queue`, and run :attr:`worker_concurrency` jobs at a time.
    Return None for an engine that needs no worker process of its own. A
    broader-scoped override must pass the settings itself
    (``child_env(settings={"TASK_FERRY": ...})``).
``progress_store_setting`` (optional)
    ``TASK_FERRY["PROGRESS_STORE"]``; default: the project's setting. An
    out-of-process executor needs a store visible across processes.

Every test runs with ``transactional_db`` (workers only see committed rows,
and ``on_commit`` must really fire), dispatches the kit's ``ConformanceJob``
(type ``ferry_conformance``) through ``JobHandler`` and waits with
:func:`wait_for_state`, bounded by :attr:`job_timeout`. Tests that need a
capability are gated by the executor's own ``supports_*`` / ``out_of_process``
flags; see :func:`task_ferry.testing.base.requires`.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connections, transaction
from django.utils import timezone

from task_ferry.states import JOB_STATES_ENDED

from .base import (
    ConformanceBase,
    assert_not_in_transaction,
    create_pending_job,
    dispatch_of,
    requires,
    skip_unless_supported,
    standard_class,
    wait_until,
)
from .jobs import CONFORMANCE_TYPE

__all__ = ["ExecutorConformance", "wait_for_state"]


def wait_for_state(job_id: int, states: str | Iterable[str], timeout: float):
    """Poll the job row until its state is one of ``states``; return the fresh ``ConformanceJob``.

    Fails at once if the job ends in another state, and after ``timeout`` seconds
    otherwise, quoting the row (state, attempts, body runs, error)."""
    from .models import ConformanceJob

    wanted = (states,) if isinstance(states, str) else tuple(states)
    deadline = time.monotonic() + timeout
    while True:
        job = ConformanceJob._base_manager.get(pk=job_id)
        if job.state in wanted:
            return job
        detail = (
            f"job {job_id} is {job.state!r} (attempts={job.attempts}, body_runs={job.body_runs}, "
            f"error={job.error!r}); expected {' or '.join(wanted)}"
        )
        if job.state in JOB_STATES_ENDED:
            raise AssertionError(detail)
        if time.monotonic() >= deadline:
            raise AssertionError(f"{detail} within {timeout}s. Is the worker running (ferry_worker fixture)?")
        time.sleep(0.05)


def _start(**fields: Any):
    from task_ferry.handler import JobHandler

    return JobHandler.create_and_start(None, CONFORMANCE_TYPE, **fields)


class _Background:
    """``create_and_start`` in a thread, for executors that run the job inline
    (``create_and_start`` returns only when it ends) as well as for the others."""

    def __init__(self, **fields: Any) -> None:
        from task_ferry import signals

        self._created = threading.Event()
        self.job_id: int | None = None
        self.error: BaseException | None = None
        self._uid = f"ferry-conformance-{uuid.uuid4().hex}"

        def created(sender: Any, job: Any, **kwargs: Any) -> None:
            # job_created is sent in the creating thread, before an inline executor runs the job.
            if threading.get_ident() == self._thread.ident:
                self.job_id = job.pk
                self._created.set()

        self._signal = signals.job_created
        self._signal.connect(created, weak=False, dispatch_uid=self._uid)
        self._thread = threading.Thread(target=self._run, kwargs=fields, daemon=True)
        self._thread.start()

    def _run(self, **fields: Any) -> None:
        try:
            _start(**fields)
        except BaseException as exc:
            self.error = exc
        finally:
            self._created.set()
            connections.close_all()  # this thread's connections only

    def wait_created(self, timeout: float) -> int:
        self._created.wait(timeout)
        self._signal.disconnect(dispatch_uid=self._uid)
        if self.job_id is None:
            raise AssertionError(f"create_and_start did not create a job within {timeout}s: {self.error!r}")
        return self.job_id

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"create_and_start (running the job inline?) did not return within {timeout}s")


class ExecutorConformance(ConformanceBase):
    """Standard tests for an executor plugin. Subclass as ``TestXxx(ExecutorConformance)``.

    Class attributes a subclass may tune (bounds, not behaviour):"""

    ferry_kind = "executor"
    #: Upper bound, in seconds, for a job to reach a state it must reach.
    job_timeout: float = 30.0
    #: How long a delivery that must NOT run is given to (wrongly) run, for
    #: executors that do not run jobs inline.
    delivery_grace: float = 2.0
    #: A second queue the worker consumes (queue tests).
    extra_queue: str = "ferry_conformance_b"
    #: A queue no worker consumes (queue tests).
    unserved_queue: str = "ferry_conformance_unserved"
    #: Jobs the worker runs at once (priority test fills them all first).
    worker_concurrency: int = 1
    #: Seconds ahead ``run_after`` is set in the delay tests.
    delay: float = 2.0

    # ── Fixtures ───────────────────────────────────────────────────────────────

    @pytest.fixture
    def executor_setting(self) -> Any:
        """The ``TASK_FERRY["EXECUTOR"]`` value under test. Override it."""
        raise NotImplementedError(
            "Override the `executor_setting` fixture in your ExecutorConformance subclass: return the "
            'TASK_FERRY["EXECUTOR"] value under test, e.g. "celery" or {"BACKEND": "celery", "OPTIONS": {...}}.'
        )

    @pytest.fixture
    def progress_store_setting(self) -> Any:
        """``TASK_FERRY["PROGRESS_STORE"]`` for the test; default the project's setting."""
        from task_ferry.conf import get_setting

        return get_setting("PROGRESS_STORE")

    @pytest.fixture
    def executor(self):
        """The configured executor instance: the one ``JobHandler`` dispatches through."""
        from task_ferry.conf import get_executor

        return get_executor()

    @pytest.fixture
    def progress_store(self):
        """The configured progress store instance: the one the runner writes to."""
        from task_ferry.conf import get_progress_store

        return get_progress_store()

    @pytest.fixture
    def ferry_worker(self, executor):
        """Start the engine's worker for the test. Override for out-of-process executors."""
        if executor.out_of_process:
            raise NotImplementedError(
                f"{type(executor).__name__} runs jobs out of process (out_of_process = True): override the "
                f"`ferry_worker` fixture to start its worker for the test (task_ferry.testing.subprocess.running), "
                f"or to return None if the engine needs no worker of its own."
            )
        return None

    @pytest.fixture(autouse=True)
    def _ferry_setup(self, request, transactional_db):
        # transactional_db is a parameter, not requested on the fly, so pytest-django sees at collection
        # time that these tests need the test database.
        if request.function.__name__ == "test_standard_tests_kept":
            yield  # the guard inspects the class only
            return
        assert_not_in_transaction()
        settings = request.getfixturevalue("settings")
        settings.TASK_FERRY = {
            **(getattr(settings, "TASK_FERRY", None) or {}),
            "EXECUTOR": request.getfixturevalue("executor_setting"),
            "PROGRESS_STORE": request.getfixturevalue("progress_store_setting"),
        }
        executor = request.getfixturevalue("executor")
        standard = getattr(standard_class(type(self)), request.function.__name__, request.function)
        skip_unless_supported(standard, executor, self.ferry_kind)
        request.getfixturevalue("ferry_worker")
        yield

    # ── Helpers ────────────────────────────────────────────────────────────────

    def grace(self, executor) -> None:
        """Give a delivery that must not run the time to (wrongly) run. Executors that
        run inline (neither deferred nor out of process) have already run it."""
        if executor.out_of_process or executor.supports_defer_on_commit:
            time.sleep(self.delivery_grace)

    # ── Standard tests ─────────────────────────────────────────────────────────

    def test_job_runs_to_finished(self):
        """A dispatched job runs once, to ``finished``, with its result stored."""
        job = _start(steps=3)
        job = wait_for_state(job.pk, "finished", self.job_timeout)
        assert job.result == {"steps": 3}
        assert job.body_runs == 1
        assert job.attempts == 1
        assert job.progress_percentage == 100
        assert job.started_at is not None and job.finished_at is not None
        assert job.started_at <= job.finished_at

    @requires("supports_defer_on_commit")
    def test_dispatch_waits_for_commit(self, executor, monkeypatch):
        """Nothing reaches the engine while the creating transaction is open; the job runs after commit.

        An engine whose queue is in the job's database (``queue_database``) is handed the run
        inside that transaction instead: its workers cannot see it before the commit either."""
        from task_ferry.handler import queue_in

        in_transaction = queue_in(executor, "default")
        submits: list[tuple[int, bool]] = []
        real_submit = executor.submit

        def spy(dispatch):
            submits.append((dispatch.job_id, connections["default"].in_atomic_block))
            return real_submit(dispatch)

        monkeypatch.setattr(executor, "submit", spy)
        with transaction.atomic():
            job = _start(steps=1)
            time.sleep(self.delivery_grace)
            if in_transaction:
                assert submits == [(job.pk, True)], "the run was not written in the job's own transaction"
            else:
                assert submits == [], "the executor was called before the creating transaction committed"
            job.refresh_from_db()
            assert (job.state, job.body_runs) == ("pending", 0)
        assert submits == [(job.pk, in_transaction)]
        job = wait_for_state(job.pk, "finished", self.job_timeout)
        assert job.body_runs == 1

    def test_failing_job_records_its_error(self):
        """A job whose body raises ends ``failed`` with the exception's message in ``error``."""
        from .models import ConformanceJob

        message = f"conformance failure {uuid.uuid4().hex}"
        try:
            job = _start(steps=2, fail_with=message)
        except RuntimeError as exc:
            # Inline executors may hand the job's own exception to the caller (immediate: RAISE_EXCEPTIONS).
            assert str(exc) == message
            job = ConformanceJob._base_manager.get(fail_with=message)
        job = wait_for_state(job.pk, "failed", self.job_timeout)
        assert job.error == message
        assert message in job.human_readable_error
        assert job.body_runs == 1
        assert job.attempts == 1
        assert job.result is None

    def test_duplicate_delivery_runs_once(self, executor):
        """The same dispatch delivered twice runs the body once."""
        job = create_pending_job(steps=5, step_sleep=0.05)
        dispatch = dispatch_of(job)
        executor.submit(dispatch)
        executor.submit(dispatch)
        job = wait_for_state(job.pk, "finished", self.job_timeout)
        self.grace(executor)  # the second delivery may land after the first finished
        job.refresh_from_db()
        assert job.body_runs == 1
        assert job.attempts == 1
        assert job.state == "finished"

    def test_cancel_before_start_never_runs(self, executor):
        """A job cancelled before it starts never runs its body, however it reaches the worker.

        The path depends on what the engine can do: a delayed job cancelled while
        it waits (``supports_delay``); a job cancelled inside its creating
        transaction and dispatched at commit (``supports_defer_on_commit``);
        otherwise a job cancelled and then delivered."""
        from task_ferry.handler import JobHandler

        if executor.supports_delay:
            run_after = timezone.now() + timedelta(seconds=self.delay)
            job = _start(steps=1, run_after=run_after)
            JobHandler.cancel(None, job.pk)
            time.sleep(self.delay)
            self.grace(executor)
        elif executor.supports_defer_on_commit:
            with transaction.atomic():
                job = _start(steps=1)
                JobHandler.cancel(None, job.pk)
            self.grace(executor)
        else:
            job = create_pending_job(steps=1)
            JobHandler.cancel(None, job.pk)
            executor.submit(dispatch_of(job))
            self.grace(executor)
        job.refresh_from_db()
        assert job.state == "cancelled"
        assert job.body_runs == 0
        assert job.attempts == 0
        assert job.started_at is None

    def test_running_job_sees_cancel(self, progress_store):
        """A running job stops at its next progress flush after a cancel, long before its end."""
        from task_ferry.handler import JobHandler

        from .models import ConformanceJob

        steps, step_sleep = 200, 0.02
        started = _Background(steps=steps, step_sleep=step_sleep)
        job_id = started.wait_created(self.job_timeout)
        wait_until(
            lambda: (snap := progress_store.read_many([job_id]).get(job_id)) is not None and snap.percentage > 0,
            self.job_timeout,
            lambda: f"a progress snapshot of job {job_id} (row: {ConformanceJob._base_manager.get(pk=job_id)})",
        )
        cancelled_at = time.monotonic()
        JobHandler.cancel(None, job_id)

        # The runner records how far the cancelled run got when it stops (the cancel itself leaves it at 0).
        job = wait_until(
            lambda: (j := ConformanceJob._base_manager.get(pk=job_id)).progress_percentage > 0 and j,
            self.job_timeout,
            f"the cancelled run of job {job_id} to stop",
        )
        stopped_after = time.monotonic() - cancelled_at
        started.join(self.job_timeout)
        assert job.state == "cancelled"
        assert job.progress_percentage < 100, "the body ran all its steps despite the cancel"
        assert stopped_after < steps * step_sleep, f"the run stopped {stopped_after:.1f}s after the cancel"
        assert job.body_runs == 1
        wait_until(
            lambda: job_id not in progress_store.read_many([job_id]), self.job_timeout, "the store entry to clear"
        )

    @requires("out_of_process")
    def test_progress_visible_while_running(self, progress_store):
        """The test process sees the worker's progress mid-run, and the entry is cleared at the end."""
        job = _start(steps=40, step_sleep=0.05)
        snap = wait_until(
            lambda: (s := progress_store.read_many([job.pk]).get(job.pk)) is not None and 0 < s.percentage < 100 and s,
            self.job_timeout,
            f"a mid-run progress snapshot of job {job.pk}",
        )
        assert snap.state == "started"
        assert snap.label.startswith("step ")
        wait_for_state(job.pk, "finished", self.job_timeout)
        # The runner clears the entry right after recording the end, in another process.
        wait_until(
            lambda: job.pk not in progress_store.read_many([job.pk]), 10, f"the store entry of job {job.pk} to clear"
        )

    @requires("supports_queues")
    def test_queue_is_honoured(self, executor):
        """A job on a queue the worker consumes runs; one on a queue nobody consumes waits."""
        from task_ferry.handler import JobHandler

        served = _start(steps=1, queue=self.extra_queue)
        unserved = _start(steps=1, queue=self.unserved_queue)
        served = wait_for_state(served.pk, "finished", self.job_timeout)
        assert served.queue == self.extra_queue
        self.grace(executor)
        unserved.refresh_from_db()
        assert (unserved.state, unserved.body_runs) == ("pending", 0)
        JobHandler.cancel(None, unserved.pk)  # and revoke it, where the engine can

    @requires("supports_priority")
    def test_priority_is_honoured(self):
        """With the worker busy, a higher-priority job queued later starts first."""
        blockers = [_start(steps=10, step_sleep=0.1) for _ in range(self.worker_concurrency)]
        for blocker in blockers:
            wait_for_state(blocker.pk, "started", self.job_timeout)
        with transaction.atomic():
            low = _start(steps=1, priority=-50)
            high = _start(steps=1, priority=50)
        low = wait_for_state(low.pk, "finished", self.job_timeout)
        high = wait_for_state(high.pk, "finished", self.job_timeout)
        assert high.started_at < low.started_at

    @requires("supports_delay")
    def test_run_after_delays_the_start(self):
        """A job with ``run_after`` does not start before it, and starts after it."""
        run_after = timezone.now() + timedelta(seconds=self.delay)
        job = _start(steps=1, run_after=run_after)
        time.sleep(self.delay / 2)
        job.refresh_from_db()
        assert (job.state, job.body_runs) == ("pending", 0)
        job = wait_for_state(job.pk, "finished", self.delay + self.job_timeout)
        # Engines schedule on their own clock; a few ms early is scheduling noise, a second early is a bug.
        assert job.started_at >= run_after - timedelta(seconds=0.1)
        assert job.body_runs == 1

    @requires("supports_revoke", "supports_delay")
    def test_revoked_pending_job_never_runs(self, executor):
        """A job revoked in the engine while it waits never runs (the row is left alone: still pending).

        Uses a delayed job, the only way to hold a job pending in a running engine."""
        from task_ferry.handler import JobHandler

        job = _start(steps=1, run_after=timezone.now() + timedelta(seconds=self.delay))
        executor.revoke(job.pk, job.executor_task_id)
        time.sleep(self.delay)
        self.grace(executor)
        job.refresh_from_db()
        assert (job.state, job.body_runs, job.attempts) == ("pending", 0, 0)
        JobHandler.cancel(None, job.pk)

    @requires("supports_kill")
    def test_kill_stops_a_running_attempt(self, executor, progress_store):
        """A killed attempt stops: its progress no longer advances and the job never finishes."""
        steps, step_sleep = 100, 0.05
        job = _start(steps=steps, step_sleep=step_sleep)
        began = time.monotonic()
        wait_until(
            lambda: (s := progress_store.read_many([job.pk]).get(job.pk)) is not None and s.percentage > 0,
            self.job_timeout,
            f"job {job.pk} to report progress",
        )
        executor.kill(job.pk, job.executor_task_id)

        def percentage() -> int | None:
            snap = progress_store.read_many([job.pk]).get(job.pk)
            return snap.percentage if snap else None

        time.sleep(1.0)  # let a kill that takes effect asynchronously land
        frozen = percentage()
        time.sleep(1.0)
        assert percentage() == frozen, "progress kept advancing after kill()"
        time.sleep(max(0.0, steps * step_sleep - (time.monotonic() - began)))
        self.grace(executor)
        job.refresh_from_db()
        assert job.state != "finished", "the killed attempt ran to the end"
        assert job.body_runs == 1
