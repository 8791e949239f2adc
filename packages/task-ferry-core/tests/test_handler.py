"""``JobHandler``: creation (single and bulk), limits, dispatch failures, retry,
queue depths, listing and cleanup, on the real test database."""

from __future__ import annotations

import math
import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from ferry_core_testproject.testapp.models import ExportJob, ScriptedJob

from task_ferry.conf import get_progress_store
from task_ferry.exceptions import (
    JobNotRetryable,
    JobTypeNotRegistered,
    MaxJobCountExceeded,
)
from task_ferry.executors.base import BaseExecutor
from task_ferry.handler import JobHandler
from task_ferry.models import Job, ProgressRecord
from task_ferry.protocols import Snapshot
from task_ferry.registry import job_type_registry
from task_ferry.runner import run_job
from task_ferry.states import (
    JOB_CANCELLED,
    JOB_FAILED,
    JOB_FINISHED,
    JOB_PENDING,
    JOB_STARTED,
)


class ParkingExecutor(BaseExecutor):
    """Accepts every dispatch after commit and runs nothing: jobs stay pending."""

    supports_defer_on_commit = True
    out_of_process = True
    submitted: list = []

    def submit(self, dispatch):
        ParkingExecutor.submitted.append(dispatch)
        return None


class BrokenBrokerExecutor(BaseExecutor):
    """An engine whose broker refuses every job."""

    supports_defer_on_commit = True
    out_of_process = True

    def submit(self, dispatch):
        raise ConnectionRefusedError("broker down")


class QueueInDatabaseExecutor(BaseExecutor):
    """An engine that keeps its queue in the job's database (as django-tasks-db does):
    records whether each submit ran inside the job's transaction, and returns an id of
    its own; refuses jobs of a type named ``refuse``."""

    supports_defer_on_commit = True
    out_of_process = True
    queue_database = "default"
    submitted: list = []

    def submit(self, dispatch):
        if dispatch.queue == "refused":
            raise ValueError("queue 'refused' is not accepted")
        QueueInDatabaseExecutor.submitted.append((dispatch.job_id, transaction.get_connection().in_atomic_block))
        return f"engine-{dispatch.job_id}"


PARKING = f"{__name__}.ParkingExecutor"


@pytest.fixture
def user(db):
    return get_user_model().objects.create_user("alice")


@pytest.fixture
def other_user(db):
    return get_user_model().objects.create_user("bob")


@pytest.fixture
def parked():
    ParkingExecutor.submitted = []
    with override_settings(TASK_FERRY={"EXECUTOR": PARKING, "PROGRESS_STORE": "database"}):
        yield ParkingExecutor.submitted


def _nothing_written() -> bool:
    return not Job.objects.exists() and not ScriptedJob.objects.exists() and not ExportJob.objects.exists()


# ── Creation: validation ───────────────────────────────────────────────────────


def test_values_go_through_prepare_values_and_invalid_writes_nothing(transactional_db, user, parked):
    """``export_table``'s ``prepare_values`` requires ``table_id``: missing, the
    call raises its error and no row (base or subclass) is written, for single
    and bulk creation alike."""
    with pytest.raises(ValueError, match="table_id is required"):
        JobHandler.create_and_start(user, "export_table")
    with pytest.raises(ValueError, match="table_id is required"):
        JobHandler.create_many(user, "export_table", [{"table_id": 1}, {}, {"table_id": 3}])
    assert _nothing_written()
    assert parked == []


def test_prepare_values_result_is_what_gets_stored(db, parked, monkeypatch):
    """The dict ``prepare_values`` returns, not the caller's kwargs, becomes the row."""
    scripted = job_type_registry.get("scripted")
    monkeypatch.setattr(scripted, "prepare_values", lambda values, user: {"steps": values["n"] * 2})
    job = JobHandler.create_and_start(None, "scripted", n=21)
    assert ScriptedJob.objects.get(pk=job.pk).steps == 42


def test_unknown_type_names_the_registered_ones(db):
    with pytest.raises(JobTypeNotRegistered) as err:
        JobHandler.create_and_start(None, "exprot_table", table_id=1)
    message = str(err.value)
    assert "'exprot_table'" in message
    for name in ("export_table", "scripted"):
        assert name in message
    assert _nothing_written()


def test_prepare_values_returning_a_non_field_is_a_type_error_naming_it(db, parked):
    """The default ``prepare_values`` passes kwargs through, so an unknown kwarg is
    a value that is not a field of ``ScriptedJob``."""
    with pytest.raises(TypeError, match=r"\['colour'\].*not fields of ScriptedJob"):
        JobHandler.create_and_start(None, "scripted", steps=1, colour="blue")
    assert _nothing_written()


# ── Creation: bulk ─────────────────────────────────────────────────────────────


def _create_many_queries(n: int) -> tuple[int, list[ScriptedJob], list[dict]]:
    values = [{"steps": i % 97 + 1, "step_sleep": i / 1000, "fail_with": f"f{i}"} for i in range(n)]
    with CaptureQueriesContext(connection) as ctx:
        jobs = JobHandler.create_many(None, "scripted", values)
    return len(ctx.captured_queries), jobs, values


def test_create_many_costs_the_same_queries_for_10_100_and_1000_jobs(transactional_db, parked):
    """Bulk creation of a multi-table type is a constant number of queries, not
    one per job; every job gets its own subclass row with its own values."""
    JobHandler.create_many(None, "scripted", [{}, {}])  # warm the content-type cache
    counts = {}
    for n in (10, 100, 1000):
        Job.objects.all().delete()
        parked.clear()
        counts[n], jobs, values = _create_many_queries(n)

        assert len(jobs) == n and len({j.pk for j in jobs}) == n
        assert Job.objects.count() == ScriptedJob.objects.count() == n
        ct = ContentType.objects.get_for_model(ScriptedJob)
        rows = {
            r["pk"]: r
            for r in ScriptedJob.objects.values(
                "pk", "steps", "step_sleep", "fail_with", "type", "state", "content_type", "queue", "executor_task_id"
            )
        }
        for job, given in zip(jobs, values, strict=True):
            row = rows[job.pk]
            assert (row["steps"], row["step_sleep"], row["fail_with"]) == (
                given["steps"],
                given["step_sleep"],
                given["fail_with"],
            )
            assert (row["type"], row["state"], row["content_type"], row["queue"]) == (
                "scripted",
                JOB_PENDING,
                ct.pk,
                "default",
            )
            assert row["executor_task_id"] == job.executor_task_id
        assert sorted(d.job_id for d in parked) == sorted(rows)

    if connection.vendor == "sqlite":
        # SQLite caps bound parameters (999), so each table's INSERT is split into
        # batches of Django's bulk_batch_size: the count may grow per batch, never per job.
        def batches(model, n, skip_auto_pk):
            fields = [f for f in model._meta.local_concrete_fields if not (skip_auto_pk and f.primary_key)]
            return math.ceil(n / connection.ops.bulk_batch_size(fields, range(n)))

        extra = {n: batches(Job, n, True) + batches(ScriptedJob, n, False) for n in counts}
        constant = counts[10] - extra[10]
        assert all(counts[n] <= constant + extra[n] for n in counts), (counts, extra)
        assert counts[1000] <= 1000 // 25, counts
    else:
        assert counts[10] == counts[100] == counts[1000], counts
        assert counts[1000] <= 10, counts


def test_create_many_is_all_or_nothing_when_after_job_creation_raises(transactional_db, parked, monkeypatch):
    calls = []

    def after_job_creation(job, values):
        calls.append(job.pk)
        if len(calls) == 3:
            raise RuntimeError("third job refused")

    monkeypatch.setattr(job_type_registry.get("scripted"), "after_job_creation", after_job_creation)
    with pytest.raises(RuntimeError, match="third job refused"):
        JobHandler.create_many(None, "scripted", [{"steps": i + 1} for i in range(5)])
    assert len(calls) == 3
    assert _nothing_written()
    assert parked == [], "a job of a rolled-back batch was dispatched"


def test_create_many_respects_max_count_for_the_whole_batch(user, other_user, parked):
    """``scripted`` has ``max_count = 3``: a batch that would take the user past
    it is refused whole; jobs without a user are not limited."""
    with pytest.raises(MaxJobCountExceeded, match="at most 3"):
        JobHandler.create_many(user, "scripted", [{}] * 4)
    assert _nothing_written()

    JobHandler.create_many(user, "scripted", [{}] * 2)
    with pytest.raises(MaxJobCountExceeded, match="have 2 pending or running"):
        JobHandler.create_many(user, "scripted", [{}] * 2)
    JobHandler.create_many(user, "scripted", [{}])
    assert ScriptedJob.objects.filter(user=user).count() == 3

    # Ended jobs free their slot; other users and system jobs are counted apart.
    Job.objects.filter(user=user).first().mark_cancelled()
    JobHandler.create_and_start(user, "scripted")
    JobHandler.create_many(other_user, "scripted", [{}] * 3)
    JobHandler.create_many(None, "scripted", [{}] * 10)
    assert ScriptedJob.objects.filter(user=user, state=JOB_PENDING).count() == 3


# ── Creation: one job with nothing beside it ───────────────────────────────────


@pytest.fixture
def plain_type(register_type):
    return register_type("handler_plain")


def _first_words(ctx: CaptureQueriesContext) -> list[str]:
    return [q["sql"].split(None, 1)[0].upper() for q in ctx.captured_queries]


def test_a_system_job_with_nothing_beside_it_is_one_insert(transactional_db, parked, plain_type):
    """No user (no ``max_count`` to hold), one table, no hook or save receiver that
    could write beside it, no transaction around the call: the INSERT commits on its
    own, with no BEGIN and COMMIT, and the job is dispatched once it is in."""
    JobHandler.create_and_start(None, "handler_plain")  # the content type, cached
    parked.clear()
    seen_by_submit = []

    def submit(dispatch):  # committed before the engine hears of it: no transaction is open
        seen_by_submit.append((connection.in_atomic_block, connection.get_autocommit()))
        parked.append(dispatch)

    with CaptureQueriesContext(connection) as ctx, pytest.MonkeyPatch.context() as mp:
        mp.setattr(ParkingExecutor, "submit", lambda self, dispatch: submit(dispatch))
        job = JobHandler.create_and_start(None, "handler_plain", queue="q1", priority=3)
    assert _first_words(ctx) == ["INSERT"]
    assert seen_by_submit == [(False, True)]
    row = Job.objects.values("state", "type", "queue", "priority", "executor_task_id").get(pk=job.pk)
    assert row == {
        "state": JOB_PENDING,
        "type": "handler_plain",
        "queue": "q1",
        "priority": 3,
        "executor_task_id": job.executor_task_id,
    }
    assert [(d.job_id, d.queue, d.priority, d.task_id) for d in parked] == [(job.pk, "q1", 3, job.executor_task_id)]


def test_creation_keeps_its_transaction_when_something_could_write_beside_the_job(
    transactional_db, parked, plain_type, register_type, user, monkeypatch
):
    from django.db.models.signals import post_save, pre_save

    JobHandler.create_and_start(None, "handler_plain")  # the content type, cached

    def words(make) -> list[str]:
        with CaptureQueriesContext(connection) as ctx:
            make()
        return _first_words(ctx)

    # A user's job: its max_count is counted under a lock in the transaction.
    assert "BEGIN" in words(lambda: JobHandler.create_and_start(user, "handler_plain"))
    # A model with a table of its own: two INSERTs.
    assert "BEGIN" in words(lambda: JobHandler.create_and_start(None, "scripted"))
    # Two jobs.
    assert "BEGIN" in words(lambda: JobHandler.create_many(None, "handler_plain", [{}, {}]))
    # A save receiver, before or after.
    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append(instance.pk)

    for signal in (pre_save, post_save):
        signal.connect(receiver, sender=Job)
        try:
            assert "BEGIN" in words(lambda: JobHandler.create_and_start(None, "handler_plain"))
        finally:
            signal.disconnect(receiver, sender=Job)
    assert len(seen) == 2
    # An after_job_creation hook, on the instance or in a subclass, and undone with the job when it raises.
    monkeypatch.setattr(plain_type, "after_job_creation", lambda job, values: (_ for _ in ()).throw(ValueError("no")))
    before = Job.objects.count()
    with pytest.raises(ValueError, match="no"):
        JobHandler.create_and_start(None, "handler_plain")
    assert Job.objects.count() == before
    monkeypatch.undo()

    register_type("handler_hooked", after_job_creation=lambda self, job, values: None)
    assert "BEGIN" in words(lambda: JobHandler.create_and_start(None, "handler_hooked"))
    before = Job.objects.count()
    # Inside the caller's transaction: the job and its dispatch wait for the caller's commit.
    parked.clear()
    with pytest.raises(RuntimeError, match="undo"), transaction.atomic():
        JobHandler.create_and_start(None, "handler_plain")
        assert parked == []
        raise RuntimeError("undo")
    assert parked == [] and Job.objects.count() == before
    # In manual transaction management: nothing reaches the engine before the caller commits.
    transaction.set_autocommit(False)
    try:
        job = JobHandler.create_and_start(None, "handler_plain")
        assert parked == []
        transaction.commit()
    finally:
        transaction.set_autocommit(True)  # on-commit callbacks run here
    assert [d.job_id for d in parked] == [job.pk]


# ── Dispatch failure ───────────────────────────────────────────────────────────


def test_executor_that_cannot_submit_marks_the_job_failed_and_raises(transactional_db, plain_type):
    """A job the engine refuses is recorded failed with the reason and the error
    reaches the caller; none is left pending with no run scheduled."""
    with override_settings(TASK_FERRY={"EXECUTOR": f"{__name__}.BrokenBrokerExecutor"}):
        with pytest.raises(ConnectionRefusedError, match="broker down"):
            JobHandler.create_and_start(None, "scripted", steps=1)
        with pytest.raises(ConnectionRefusedError), transaction.atomic():
            JobHandler.create_many(None, "scripted", [{}] * 3)
        with pytest.raises(ConnectionRefusedError, match="broker down"):
            JobHandler.create_and_start(None, "handler_plain")  # one INSERT, no transaction of its own
    rows = list(Job.objects.values("state", "error", "finished_at"))
    assert len(rows) == 5
    for row in rows:
        assert row["state"] == JOB_FAILED
        assert row["error"].startswith("dispatch failed") and "broker down" in row["error"]
        assert row["finished_at"] is not None


@pytest.fixture
def queue_in_database():
    QueueInDatabaseExecutor.submitted = []
    executor = f"{__name__}.QueueInDatabaseExecutor"
    with override_settings(TASK_FERRY={"EXECUTOR": executor, "PROGRESS_STORE": "database"}):
        yield QueueInDatabaseExecutor.submitted


def test_an_engine_queueing_in_the_jobs_database_is_handed_the_run_in_its_transaction(
    transactional_db, queue_in_database, plain_type
):
    job = JobHandler.create_and_start(None, "scripted", steps=1)
    jobs = JobHandler.create_many(None, "scripted", [{}, {}])
    plain = JobHandler.create_and_start(None, "handler_plain")  # a job that could be one INSERT alone
    assert queue_in_database == [(job.pk, True), *((j.pk, True) for j in jobs), (plain.pk, True)]
    # The engine's ids are recorded in the same transaction.
    assert ScriptedJob.objects.get(pk=job.pk).executor_task_id == f"engine-{job.pk}"
    # Rolled back by the caller: the run goes with the job.
    with pytest.raises(RuntimeError, match="undo"), transaction.atomic():
        JobHandler.create_and_start(None, "scripted", steps=1)
        raise RuntimeError("undo")
    assert ScriptedJob.objects.count() == 3 and Job.objects.count() == 4
    # Retry too.
    ScriptedJob.objects.filter(pk=job.pk).update(state=JOB_FAILED)
    queue_in_database.clear()
    JobHandler.retry(job.pk)
    assert queue_in_database == [(job.pk, True)]


def test_a_refusal_inside_the_jobs_transaction_writes_nothing(transactional_db, queue_in_database):
    with pytest.raises(ValueError, match="'refused' is not accepted"):
        JobHandler.create_and_start(None, "scripted", steps=1, queue="refused")
    with pytest.raises(ValueError, match="'refused' is not accepted"):
        JobHandler.create_many(None, "scripted", [{"queue": "default"}, {"queue": "refused"}])
    assert _nothing_written()


# ── Retry ──────────────────────────────────────────────────────────────────────


def test_retry_failed_job_runs_it_again(transactional_db, parked):
    job = JobHandler.create_and_start(None, "scripted", steps=2, fail_with="boom")
    assert run_job(job.pk).outcome == JOB_FAILED
    ScriptedJob.objects.filter(pk=job.pk).update(fail_with="")
    parked.clear()

    retried = JobHandler.retry(job.pk)
    row = ScriptedJob.objects.get(pk=job.pk)
    assert (row.state, row.error, row.human_readable_error, row.finished_at) == (JOB_PENDING, "", "", None)
    assert [d.job_id for d in parked] == [job.pk]
    assert parked[0].task_id == retried.executor_task_id != job.executor_task_id

    assert run_job(job.pk).outcome == JOB_FINISHED
    row.refresh_from_db()
    assert (row.state, row.attempts, row.body_runs, row.result) == (JOB_FINISHED, 2, 2, {"steps": 2})


def test_retry_cancelled_job_and_refuse_live_or_finished(transactional_db, parked):
    job = JobHandler.create_and_start(None, "scripted", steps=1)
    JobHandler.cancel(None, job.pk)
    assert JobHandler.retry(job).state == JOB_PENDING
    with pytest.raises(JobNotRetryable, match="'pending'"):
        JobHandler.retry(job.pk)
    assert run_job(job.pk).outcome == JOB_FINISHED
    with pytest.raises(JobNotRetryable, match="'finished'"):
        JobHandler.retry(job.pk)
    assert ScriptedJob.objects.get(pk=job.pk).state == JOB_FINISHED


def test_retry_of_a_job_cancelled_while_started_runs_to_the_end(transactional_db, parked):
    """A worker died with the job ``started``; the user cancels it (a cancel flag is
    published for the presumed runner) and retries it. The retried run must not
    inherit the old cancel request."""
    job = JobHandler.create_and_start(None, "scripted", steps=3, step_sleep=0.01)
    Job.objects.filter(pk=job.pk).update(state=JOB_STARTED)  # claimed by a worker that then died
    JobHandler.cancel(None, job.pk)
    JobHandler.retry(job.pk)
    with override_settings(TASK_FERRY={"EXECUTOR": PARKING, "PROGRESS_FLUSH_INTERVAL": 0.001}):
        assert run_job(job.pk).outcome == JOB_FINISHED


@pytest.mark.parametrize("store_percentage, expected", [(40, (40, "step 4")), (0, (10, "row label"))])
def test_cancel_of_a_running_job_records_how_far_it_got(transactional_db, parked, store_percentage, expected):
    """The row of a job cancelled while running shows its last progress from the store at
    once (an API reader sees 40 %, not the row's stale 10 %, before the runner notices the
    cancel); a store behind the row never lowers it."""
    job = JobHandler.create_and_start(None, "scripted", steps=3)
    Job.objects.filter(pk=job.pk).update(state=JOB_STARTED, progress_percentage=10, progress_state="row label")
    get_progress_store().write(Snapshot(job.pk, JOB_STARTED, store_percentage, "step 4", time.time()))
    JobHandler.cancel(None, job.pk)
    row = Job.objects.get(pk=job.pk)
    assert (row.state, row.progress_percentage, row.progress_state) == (JOB_CANCELLED, *expected)


def test_retry_respects_max_count(user, parked):
    failed = JobHandler.create_and_start(user, "scripted")
    failed.mark_failed("x")
    JobHandler.create_many(user, "scripted", [{}] * 3)
    with pytest.raises(MaxJobCountExceeded):
        JobHandler.retry(failed.pk, user=user)
    assert Job.objects.get(pk=failed.pk).state == JOB_FAILED


# ── Reading ────────────────────────────────────────────────────────────────────


def test_queue_depths_counts_pending_jobs_per_queue(db, parked, django_assert_num_queries):
    JobHandler.create_many(None, "export_table", [{"table_id": 1}, {"table_id": 2}])  # queue "exports"
    scripted = JobHandler.create_many(None, "scripted", [{}] * 3)  # DEFAULT_QUEUE
    JobHandler.create_and_start(None, "scripted", queue="bulk")
    scripted[0].mark_cancelled()
    Job.objects.filter(pk=scripted[1].pk).update(state=JOB_STARTED)
    with django_assert_num_queries(1):
        depths = JobHandler.queue_depths()
    assert depths == {"exports": 2, "default": 1, "bulk": 1}


def test_get_jobs_for_user_filters(user, other_user, parked):
    mine_scripted = JobHandler.create_many(user, "scripted", [{}] * 2)
    mine_export = JobHandler.create_and_start(user, "export_table", table_id=1)
    JobHandler.create_and_start(other_user, "scripted")
    JobHandler.create_and_start(None, "scripted")
    mine_scripted[1].mark_failed("x")
    base = timezone.now()
    for age, job in enumerate([mine_export, *mine_scripted]):  # newest first by created_at
        Job.objects.filter(pk=job.pk).update(created_at=base - timedelta(minutes=age))

    def pks(qs):
        return [j.pk for j in qs]

    assert pks(JobHandler.get_jobs_for_user(user)) == [mine_export.pk, mine_scripted[0].pk, mine_scripted[1].pk]
    assert pks(JobHandler.get_jobs_for_user(user, states=[JOB_PENDING])) == [mine_export.pk, mine_scripted[0].pk]
    by_type = list(JobHandler.get_jobs_for_user(user, job_type_name="scripted"))
    assert pks(by_type) == [mine_scripted[0].pk, mine_scripted[1].pk]
    assert all(isinstance(j, ScriptedJob) for j in by_type)
    assert pks(JobHandler.get_jobs_for_user(user, job_type_name="scripted", states=[JOB_FAILED])) == [
        mine_scripted[1].pk
    ]
    assert pks(JobHandler.get_jobs_for_user(user, limit=1, offset=1)) == [mine_scripted[0].pk]
    with pytest.raises(JobTypeNotRegistered):
        JobHandler.get_jobs_for_user(user, job_type_name="nope")


# ── Cleanup ────────────────────────────────────────────────────────────────────


def test_cleanup_old_jobs_deletes_only_old_ended_jobs(user, parked, monkeypatch):
    """Jobs that ended and were created more than ``days`` ago go, with their
    subclass rows and their progress rows, after ``before_delete`` saw each one
    (a hook that raises does not stop the cleanup). Live jobs stay however old."""
    seen = []

    def before_delete(job):
        seen.append((job.pk, type(job)))
        if len(seen) == 1:
            raise RuntimeError("hook failure is logged, not fatal")

    monkeypatch.setattr(job_type_registry.get("scripted"), "before_delete", before_delete)
    jobs = {state: JobHandler.create_and_start(None, "scripted") for state in ("pending", "started", "finished")}
    jobs |= {state: JobHandler.create_and_start(user, "scripted") for state in ("failed", "cancelled")}
    jobs["recent_finished"] = JobHandler.create_and_start(None, "scripted")
    for state in (JOB_STARTED, JOB_FINISHED, JOB_FAILED, JOB_CANCELLED):
        Job.objects.filter(pk=jobs[state].pk).update(state=state)
    Job.objects.filter(pk=jobs["recent_finished"].pk).update(state=JOB_FINISHED)
    old = timezone.now() - timedelta(days=10, minutes=1)
    Job.objects.exclude(pk=jobs["recent_finished"].pk).update(created_at=old)
    for job in jobs.values():
        ProgressRecord.objects.create(job_id=job.pk, state="started")

    assert JobHandler.cleanup_old_jobs(days=11) == 0
    deleted = JobHandler.cleanup_old_jobs(days=10)

    gone = {jobs[s].pk for s in (JOB_FINISHED, JOB_FAILED, JOB_CANCELLED)}
    assert deleted == 3
    assert sorted(pk for pk, _ in seen) == sorted(gone)
    assert all(cls is ScriptedJob for _, cls in seen)
    kept = {j.pk for j in jobs.values()} - gone
    assert set(Job.objects.values_list("pk", flat=True)) == kept
    assert set(ScriptedJob.objects.values_list("pk", flat=True)) == kept
    assert set(ProgressRecord.objects.values_list("job_id", flat=True)) == kept


def test_cleanup_old_jobs_defaults_to_job_expiry_days(db, parked):
    job = JobHandler.create_and_start(None, "scripted")
    Job.objects.filter(pk=job.pk).update(state=JOB_FINISHED, created_at=timezone.now() - timedelta(days=3))
    assert JobHandler.cleanup_old_jobs() == 0  # default 7 days
    with override_settings(TASK_FERRY={"EXECUTOR": PARKING, "JOB_EXPIRY_DAYS": 2}):
        assert JobHandler.cleanup_old_jobs() == 1
    with pytest.raises(ValueError, match="non-negative"):
        JobHandler.cleanup_old_jobs(days=-1)


def test_cleanup_clears_the_live_store_entry(transactional_db, parked):
    """A stale snapshot in the (default, database) store disappears with its job.
    Committed data: the store writes through its own connection."""
    job = JobHandler.create_and_start(None, "scripted")
    get_progress_store().write(Snapshot(job.pk, JOB_STARTED, 30, "stale", 0.0))
    Job.objects.filter(pk=job.pk).update(state=JOB_FAILED, created_at=timezone.now() - timedelta(days=30))
    assert JobHandler.cleanup_old_jobs() == 1
    assert get_progress_store().read_many([job.pk]) == {}
