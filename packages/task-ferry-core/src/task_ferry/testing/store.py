"""``ProgressStoreConformance``: the behaviour every progress-store plugin must show.

A plugin's whole conformance file::

    import pytest
    from task_ferry.testing.store import ProgressStoreConformance

    @pytest.mark.integration
    class TestRedisStore(ProgressStoreConformance):
        @pytest.fixture
        def progress_store_setting(self):
            return {"BACKEND": "redis", "OPTIONS": {"URL": "redis://127.0.0.1:6379/15"}}

Fixtures a subclass provides:

``progress_store_setting`` (required)
    The ``TASK_FERRY["PROGRESS_STORE"]`` value under test. The kit applies it
    with pytest-django's ``settings`` (together with anything the fixture itself
    sets there, such as a ``CACHES`` alias), so the runner, the
    ``progress_store`` fixture and child processes started with
    :mod:`task_ferry.testing.subprocess` all use the same store.
``progress_store`` (optional)
    The instance the store-level tests call; default the one built from the
    setting (``task_ferry.conf.get_progress_store()``). An override must share
    its data with that one: runner-level tests go through the setting.

Tests that need a capability are gated by the store's own flags
(``supports_cross_process``, ``supports_mid_transaction``,
``supports_subscribe``); see :func:`task_ferry.testing.base.requires`. Job ids
used by store-level tests are random and large, and cleared afterwards, so a
store shared between test runs (a Redis database) is safe to test in.
"""

from __future__ import annotations

import json
import random
import select
import subprocess
import threading
import time
from typing import Any

import pytest
from django.db import connections, transaction

from task_ferry.exceptions import Unsupported
from task_ferry.protocols import Snapshot

from .base import (
    ConformanceBase,
    assert_not_in_transaction,
    create_pending_job,
    requires,
    skip_unless_supported,
    standard_class,
)

__all__ = ["ProgressStoreConformance", "watch_progress"]


def watch_progress(job_id: int, timeout: float) -> dict:
    """Poll the configured store until ``job_id`` shows a mid-run snapshot (0 < percentage < 100);
    report it and whether the job's row was visible at that moment.

    Runs in a child process (cross-process stores) or a thread (others) of the
    mid-transaction test; both have database connections of their own."""
    from task_ferry.conf import get_progress_store

    from .models import ConformanceJob

    store = get_progress_store()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = store.read_many([job_id]).get(job_id)
        if snap is not None and 0 < snap.percentage < 100:
            return {
                "percentage": snap.percentage,
                "row_visible": ConformanceJob._base_manager.filter(pk=job_id).exists(),
            }
        time.sleep(0.02)
    return {"percentage": None, "row_visible": None}


_CHILD_WRITE = """
import json, os, sys, time
from task_ferry.conf import get_progress_store
from task_ferry.protocols import Snapshot
job_id = int(sys.argv[1])
cancel = get_progress_store().write(Snapshot(job_id, "started", 37, f"written by {os.getpid()}", time.time()))
print(json.dumps({"cancel": cancel, "pid": os.getpid()}))
"""

_CHILD_WATCH = """
import json, sys
from task_ferry.testing.store import watch_progress
print("ready", flush=True)
print(json.dumps(watch_progress(int(sys.argv[1]), float(sys.argv[2]))), flush=True)
"""


class ProgressStoreConformance(ConformanceBase):
    """Standard tests for a progress-store plugin. Subclass as ``TestXxx(ProgressStoreConformance)``."""

    ferry_kind = "progress store"
    #: Upper bound, in seconds, for a child process or a job run the tests wait for.
    timeout: float = 60.0

    # ── Fixtures ───────────────────────────────────────────────────────────────

    @pytest.fixture
    def progress_store_setting(self) -> Any:
        """The ``TASK_FERRY["PROGRESS_STORE"]`` value under test. Override it."""
        raise NotImplementedError(
            "Override the `progress_store_setting` fixture in your ProgressStoreConformance subclass: return the "
            'TASK_FERRY["PROGRESS_STORE"] value under test, e.g. "redis" or {"BACKEND": "redis", "OPTIONS": {...}}.'
        )

    @pytest.fixture
    def progress_store(self):
        """The store instance under test; default the one built from ``progress_store_setting``."""
        from task_ferry.conf import get_progress_store

        return get_progress_store()

    @pytest.fixture(autouse=True)
    def _ferry_setup(self, request, transactional_db):
        # transactional_db is a parameter, not requested on the fly, so pytest-django sees at collection
        # time that these tests need the test database.
        if request.function.__name__ == "test_standard_tests_kept":
            yield  # the guard inspects the class only
            return
        assert_not_in_transaction()
        settings = request.getfixturevalue("settings")
        setting = request.getfixturevalue("progress_store_setting")
        settings.TASK_FERRY = {**(getattr(settings, "TASK_FERRY", None) or {}), "PROGRESS_STORE": setting}
        store = request.getfixturevalue("progress_store")
        standard = getattr(standard_class(type(self)), request.function.__name__, request.function)
        skip_unless_supported(standard, store, self.ferry_kind)
        yield

    @pytest.fixture
    def fresh_ids(self, progress_store):
        """``fresh_ids(n)``: ``n`` consecutive job ids no other test or run uses; cleared at teardown."""
        used: list[int] = []

        def make(n: int = 1) -> list[int]:
            base = random.SystemRandom().randrange(10**12, 10**15)
            ids = list(range(base, base + n))
            used.extend(ids)
            return ids

        yield make
        for job_id in used:
            progress_store.clear(job_id)

    # ── Store-level tests ──────────────────────────────────────────────────────

    def test_write_then_read_many_returns_the_snapshot(self, progress_store, fresh_ids):
        (job_id,) = fresh_ids()
        written = Snapshot(job_id, "started", 42, "halfway there", time.time())
        assert progress_store.write(written) is False
        snap = progress_store.read_many([job_id])[job_id]
        assert (snap.job_id, snap.state, snap.percentage, snap.label) == (job_id, "started", 42, "halfway there")
        assert snap.updated_at == pytest.approx(written.updated_at, abs=1e-3)
        assert snap.cancel_requested is False

    def test_read_many_returns_exactly_the_written_jobs(self, progress_store, fresh_ids):
        """One call for many ids returns every written one, and nothing for the others."""
        ids = fresh_ids(250)
        written, never = ids[:200], ids[200:]
        for n, job_id in enumerate(written):
            progress_store.write(Snapshot(job_id, "started", n % 100, f"job {n}", time.time()))
        found = progress_store.read_many(never + written)
        assert set(found) == set(written)
        assert all(found[job_id].percentage == n % 100 for n, job_id in enumerate(written))
        assert all(found[job_id].label == f"job {n}" for n, job_id in enumerate(written))
        assert progress_store.read_many([]) == {}

    def test_write_reports_cancel_only_after_request_cancel(self, progress_store, fresh_ids):
        job_id, other = fresh_ids(2)
        assert progress_store.write(Snapshot(job_id, "started", 1, "a", time.time())) is False
        assert progress_store.write(Snapshot(job_id, "started", 2, "b", time.time())) is False
        progress_store.request_cancel(job_id)
        assert progress_store.write(Snapshot(job_id, "started", 3, "c", time.time())) is True
        assert progress_store.write(Snapshot(job_id, "started", 4, "d", time.time())) is True
        assert progress_store.read_many([job_id])[job_id].cancel_requested is True
        # The flag belongs to one job.
        assert progress_store.write(Snapshot(other, "started", 1, "a", time.time())) is False

    def test_clear_forgets_snapshot_and_cancel(self, progress_store, fresh_ids):
        (job_id,) = fresh_ids()
        progress_store.write(Snapshot(job_id, "started", 10, "x", time.time()))
        progress_store.request_cancel(job_id)
        progress_store.clear(job_id, Snapshot(job_id, "cancelled", 10, "x", time.time()))
        assert progress_store.read_many([job_id]) == {}
        assert progress_store.write(Snapshot(job_id, "started", 11, "y", time.time())) is False

    def test_cancel_requested_before_first_write_is_seen(self, progress_store, fresh_ids):
        """A cancel may arrive before the job's first flush; that flush must see it."""
        (job_id,) = fresh_ids()
        progress_store.request_cancel(job_id)
        assert progress_store.write(Snapshot(job_id, "started", 5, "first", time.time())) is True
        snap = progress_store.read_many([job_id])[job_id]
        assert (snap.percentage, snap.label, snap.cancel_requested) == (5, "first", True)

    def test_long_label_does_not_break_write(self, progress_store, fresh_ids):
        """Labels are free text from job code; a long one is kept (at least 255 chars) or cut, never an error."""
        (job_id,) = fresh_ids()
        label = "".join(f"step {n}; " for n in range(200))
        assert len(label) > 1000
        assert progress_store.write(Snapshot(job_id, "started", 50, label, time.time())) is False
        snap = progress_store.read_many([job_id])[job_id]
        assert label.startswith(snap.label)
        assert len(snap.label) >= 255
        assert snap.percentage == 50

    @requires("supports_cross_process")
    def test_snapshot_written_in_another_process_is_visible(self, progress_store, fresh_ids):
        from .subprocess import run_python

        (job_id,) = fresh_ids()
        child = json.loads(run_python(_CHILD_WRITE, str(job_id), timeout=self.timeout))
        assert child["cancel"] is False
        snap = progress_store.read_many([job_id])[job_id]
        assert (snap.percentage, snap.label) == (37, f"written by {child['pid']}")

    @requires("supports_cross_process")
    def test_cancel_requested_here_is_seen_by_another_process(self, progress_store, fresh_ids):
        from .subprocess import run_python

        (job_id,) = fresh_ids()
        progress_store.request_cancel(job_id)
        child = json.loads(run_python(_CHILD_WRITE, str(job_id), timeout=self.timeout))
        assert child["cancel"] is True

    @requires("supports_mid_transaction")
    def test_progress_visible_while_the_job_transaction_is_open(self, progress_store):
        """A job run inside a database transaction publishes progress that others see before it commits.

        The reader is another process (cross-process stores) or another thread
        with its own connection; it also reports that the job's row itself is
        not visible yet, which proves the transaction really was open."""
        from task_ferry.runner import run_job

        from .subprocess import bootstrap_args, child_env

        with transaction.atomic():
            job = create_pending_job(steps=20, step_sleep=0.1)
            if progress_store.supports_cross_process:
                reader = subprocess.Popen(
                    bootstrap_args("-c", _CHILD_WATCH, str(job.pk), str(self.timeout)),
                    env=child_env(),
                    stdout=subprocess.PIPE,
                    text=True,
                )
                try:
                    # Bounded: a child stuck in start-up must fail the test, not hang it.
                    started = select.select([reader.stdout], [], [], self.timeout)[0]
                    assert started and reader.stdout.readline().strip() == "ready", "the reader process failed to start"
                    result = run_job(job.pk)
                    out, _ = reader.communicate(timeout=self.timeout)
                finally:
                    if reader.poll() is None:
                        reader.kill()
                        reader.wait()
                seen = json.loads(out)
            else:
                seen = {}

                def watch() -> None:
                    try:
                        seen.update(watch_progress(job.pk, self.timeout))
                    finally:
                        connections.close_all()

                thread = threading.Thread(target=watch)
                thread.start()
                result = run_job(job.pk)
                thread.join(self.timeout)
        assert result.outcome == "finished"
        assert seen["percentage"] is not None, "no mid-run snapshot was visible while the transaction was open"
        assert 0 < seen["percentage"] < 100
        assert seen["row_visible"] is False

    @requires("supports_subscribe")
    def test_subscribe_yields_written_snapshots(self, progress_store, fresh_ids):
        (job_id,) = fresh_ids()
        received: list[Snapshot] = []
        errors: list[BaseException] = []

        def consume() -> None:
            try:
                for snap in progress_store.subscribe(job_id, 5.0):
                    received.append(snap)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=consume, daemon=True)
        thread.start()
        written: dict[int, str] = {}
        deadline = time.monotonic() + self.timeout
        pct = 0
        # Keep writing until the subscriber has one: it may not be listening when the first writes land.
        while not received and time.monotonic() < deadline and not errors:
            pct = pct % 98 + 1
            written[pct] = f"live {pct}"
            progress_store.write(Snapshot(job_id, "started", pct, written[pct], time.time()))
            time.sleep(0.05)
        progress_store.clear(job_id, Snapshot(job_id, "finished", 100, "done", time.time()))
        thread.join(self.timeout)
        assert not errors, errors
        assert not thread.is_alive(), "subscribe() did not end after the job ended or the timeout passed"
        live = [s for s in received if s.state == "started"]
        assert live, f"subscribe() yielded no written snapshot: {received}"
        assert all(s.job_id == job_id and written.get(s.percentage) == s.label for s in live)

    @requires(supports_subscribe=False)
    def test_subscribe_unsupported_raises(self, progress_store, fresh_ids):
        (job_id,) = fresh_ids()
        with pytest.raises(Unsupported):
            next(iter(progress_store.subscribe(job_id, 0.1)))

    # ── Runner-level tests (the store configured through TASK_FERRY) ───────────

    def test_run_job_publishes_and_clears(self, progress_store):
        """A full ``run_job`` writes progress to this store and leaves no entry behind."""
        from task_ferry.runner import run_job

        job = create_pending_job(steps=5, step_sleep=0.1)
        result = run_job(job.pk)
        assert result.outcome == "finished"
        assert result.store_writes >= 1
        assert progress_store.read_many([job.pk]) == {}
        job.refresh_from_db()
        assert (job.state, job.progress_percentage, job.body_runs) == ("finished", 100, 1)

    def test_cancel_in_store_stops_running_job(self, progress_store):
        """A cancel requested through the store stops a running job at its next flush."""
        from task_ferry.runner import run_job

        job = create_pending_job(steps=100, step_sleep=0.02)
        progress_store.request_cancel(job.pk)
        result = run_job(job.pk)
        assert result.outcome == "cancelled"
        job.refresh_from_db()
        assert job.state == "cancelled"
        assert job.body_runs == 1
        assert job.progress_percentage < 100
        assert progress_store.read_many([job.pk]) == {}
