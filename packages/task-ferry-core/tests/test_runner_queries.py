"""What one run of a short job costs in database statements, and that the cheap paths
keep every guarantee.

A no-op job that finishes is two statements on PostgreSQL, each committed on its own:
the claim that also loads the row (``UPDATE ... RETURNING`` the job's columns; for a
subclass ``WITH task_ferry_job AS (UPDATE ... RETURNING *) SELECT ...``, to read its
table too), and the outcome that also inserts the attempt's ``JobAttempt`` row. On
the other databases the claim and the load are two statements, and the outcome and
the attempt row one transaction (the row in a savepoint).
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from ferry_core_testproject.testapp.models import ExportJob, ScriptedJob

from task_ferry.models import Job, JobAttempt
from task_ferry.registry import JobType, job_type_registry
from task_ferry.runner import SKIPPED, run_job
from task_ferry.states import JOB_CANCELLED, JOB_FAILED, JOB_FINISHED

on_postgres = connection.vendor == "postgresql"


def _statements(ctx: CaptureQueriesContext) -> list[str]:
    return [q["sql"].split(None, 1)[0].upper() for q in ctx.captured_queries]


def _make(model=ScriptedJob, **fields) -> Job:
    from django.contrib.contenttypes.models import ContentType

    defaults = {"type": "scripted", "steps": 0} if model is ScriptedJob else {}
    return model.objects.create(content_type=ContentType.objects.get_for_model(model), **{**defaults, **fields})


@pytest.fixture
def noop_type(register_type):
    return register_type("queries_noop", run=lambda self, job, progress: {"ok": True})


@pytest.mark.parametrize("pass_type", [True, False], ids=["type-known", "type-unknown"])
def test_a_finishing_job_costs_two_statements_on_postgres(transactional_db, noop_type, pass_type):
    job = _make(Job, type="queries_noop")
    with CaptureQueriesContext(connection) as ctx:
        result = run_job(job.pk, "queries_noop" if pass_type else None)
    assert result.outcome == JOB_FINISHED and result.value == {"ok": True}
    if on_postgres:
        assert _statements(ctx) == ["UPDATE", "WITH"]
    else:
        assert _statements(ctx) == ["UPDATE", "SELECT", "BEGIN", "UPDATE", "SAVEPOINT", "INSERT", "RELEASE", "COMMIT"]
    job.refresh_from_db()
    assert (job.state, job.attempts, job.progress_percentage, job.result) == (JOB_FINISHED, 1, 100, {"ok": True})
    assert job.started_at is not None and job.finished_at >= job.started_at and job.heartbeat_at == job.started_at
    row = JobAttempt.objects.get(job_id=job.pk)
    assert (row.number, row.outcome, row.error, row.started_at) == (1, JOB_FINISHED, "", job.started_at)


def test_a_subclass_job_is_claimed_and_loaded_with_its_own_fields(transactional_db):
    job = _make(ScriptedJob, steps=3, hook_calls=["before"])
    with CaptureQueriesContext(connection) as ctx:
        result = run_job(job.pk, "scripted")
    assert result.outcome == JOB_FINISHED
    if on_postgres:
        # The body and the after_run hook write the job's own fields; the runner adds two statements.
        statements = _statements(ctx)
        assert statements[0] == "WITH" and statements.count("WITH") == 2 and "BEGIN" not in statements
    job.refresh_from_db()
    assert job.state == JOB_FINISHED and job.body_runs == 1 and job.steps == 3
    assert JobAttempt.objects.get(job_id=job.pk).outcome == JOB_FINISHED


def test_a_subclass_job_run_without_its_type_name_is_still_loaded_as_its_subclass(transactional_db):
    job = _make(ScriptedJob, steps=1)
    assert run_job(job.pk).outcome == JOB_FINISHED
    job.refresh_from_db()
    assert job.body_runs == 1


def test_a_job_whose_row_names_another_type_is_claimed_and_run_once(transactional_db, noop_type):
    # The dispatch says "scripted" (a ScriptedJob), but the row is a plain Job of another
    # type: the claim's one-statement load finds no ScriptedJob row, and must still run it.
    job = _make(Job, type="queries_noop")
    assert run_job(job.pk, "scripted").outcome == JOB_FINISHED
    assert run_job(job.pk, "scripted").outcome == SKIPPED
    job.refresh_from_db()
    assert (job.state, job.attempts) == (JOB_FINISHED, 1)


def test_a_second_delivery_is_one_statement_and_changes_nothing(transactional_db):
    job = _make(ScriptedJob, steps=1)
    assert run_job(job.pk, "scripted").outcome == JOB_FINISHED
    before = Job.objects.values().get(pk=job.pk)
    with CaptureQueriesContext(connection) as ctx:
        assert run_job(job.pk, "scripted").outcome == SKIPPED
    assert len(ctx.captured_queries) == 1
    assert Job.objects.values().get(pk=job.pk) == before
    assert JobAttempt.objects.filter(job_id=job.pk).count() == 1


def test_a_plain_jobs_claim_matches_only_a_job_waiting_to_run(transactional_db, noop_type):
    # A ``Job`` (no subclass table) is claimed by a plain UPDATE ... RETURNING: no row back
    # means not claimed, and the row back is the job as the claim left it.
    from datetime import timedelta

    from django.utils import timezone

    from task_ferry import runner
    from task_ferry.states import JOB_RETRYING, JOB_STARTED

    later = _make(Job, type="queries_noop", state=JOB_RETRYING, run_after=timezone.now() + timedelta(hours=1))
    due = _make(Job, type="queries_noop", state=JOB_RETRYING, run_after=timezone.now() - timedelta(seconds=1))
    with CaptureQueriesContext(connection) as ctx:
        assert run_job(later.pk, "queries_noop").outcome == SKIPPED
    assert len(ctx.captured_queries) == 1
    if on_postgres:
        assert _statements(ctx) == ["UPDATE"]
    assert Job.objects.values_list("state", "attempts").get(pk=later.pk) == (JOB_RETRYING, 0)
    claimed = runner._claim(due.pk, "queries_noop", timezone.now())
    fresh = Job.objects.get(pk=due.pk)
    assert type(claimed) is Job and claimed.state == JOB_STARTED and claimed.attempts == 1
    assert {f.attname: getattr(claimed, f.attname) for f in Job._meta.concrete_fields} == {
        f.attname: getattr(fresh, f.attname) for f in Job._meta.concrete_fields
    }
    Job.objects.filter(pk=due.pk).update(state=JOB_RETRYING, attempts=0)  # waiting again, for the runner
    result = run_job(due.pk, "queries_noop")
    assert (result.outcome, result.value) == (JOB_FINISHED, {"ok": True})
    assert run_job(due.pk, "queries_noop").outcome == SKIPPED
    due.refresh_from_db()
    assert (due.state, due.attempts) == (JOB_FINISHED, 1)
    assert due.started_at is not None and JobAttempt.objects.filter(job_id=due.pk).count() == 1


def test_a_cancelled_pending_job_is_not_claimed(transactional_db):
    job = _make(ScriptedJob, steps=1)
    Job.objects.filter(pk=job.pk).update(state=JOB_CANCELLED)
    assert run_job(job.pk, "scripted").outcome == SKIPPED
    job.refresh_from_db()
    assert (job.state, job.attempts, job.body_runs) == (JOB_CANCELLED, 0, 0)


def test_a_failing_job_records_outcome_and_attempt_together(transactional_db):
    job = _make(ScriptedJob, steps=1, fail_with="boom")
    with CaptureQueriesContext(connection) as ctx:
        result = run_job(job.pk, "scripted")
    assert result.outcome == JOB_FAILED
    if on_postgres:
        assert "BEGIN" not in _statements(ctx) and "SAVEPOINT" not in _statements(ctx)
    job.refresh_from_db()
    assert job.state == JOB_FAILED and "boom" in job.error and job.error_code == "exception"
    row = JobAttempt.objects.get(job_id=job.pk)
    assert row.outcome == JOB_FAILED and "boom" in row.error and "Traceback" in row.traceback


def test_an_attempt_row_written_first_by_someone_else_is_kept(transactional_db):
    # The reaper recorded attempt 1 as lost while the body ran; the runner's CAS still
    # holds (the job is still started at attempt 1) and its own row is dropped.
    job = _make(ScriptedJob, steps=1)

    class Recorder(JobType):
        type = "queries_recorder"
        model_class = ScriptedJob

        def run(self, job, progress):
            JobAttempt.objects.create(job_id=job.pk, number=job.attempts, outcome="worker_lost")

    job_type_registry.register(Recorder())
    try:
        Job.objects.filter(pk=job.pk).update(type="queries_recorder")
        assert run_job(job.pk, "queries_recorder").outcome == JOB_FINISHED
    finally:
        job_type_registry.unregister("queries_recorder")
    assert list(JobAttempt.objects.filter(job_id=job.pk).values_list("outcome", flat=True)) == ["worker_lost"]
    assert Job.objects.get(pk=job.pk).state == JOB_FINISHED


def test_a_job_deleted_while_it_runs_leaves_no_attempt_row_and_no_error(transactional_db):
    # The outcome's compare-and-set matches nothing, and the attempt's row is not written
    # (its foreign key would fail the statement, or the commit).
    job = _make(ExportJob, type="export_table", table_id=1)

    class Deleter(JobType):
        type = "queries_deleter"
        model_class = ExportJob

        def run(self, job, progress):
            Job.objects.filter(pk=job.pk).delete()

    job_type_registry.register(Deleter())
    try:
        Job.objects.filter(pk=job.pk).update(type="queries_deleter")
        result = run_job(job.pk, "queries_deleter")
    finally:
        job_type_registry.unregister("queries_deleter")
    assert result.outcome not in (JOB_FINISHED, SKIPPED)
    assert not Job.objects.filter(pk=job.pk).exists()
    assert not JobAttempt.objects.filter(job_id=job.pk).exists()


def test_the_fast_paths_work_inside_a_callers_transaction(db):
    # ``db`` wraps the test in a transaction: the one-statement outcome runs in a savepoint.
    job = _make(ScriptedJob, steps=1)
    assert run_job(job.pk, "scripted").outcome == JOB_FINISHED
    job.refresh_from_db()
    assert job.state == JOB_FINISHED
    assert JobAttempt.objects.get(job_id=job.pk).outcome == JOB_FINISHED


def test_prepare_process_builds_the_statements_runs_use(transactional_db, noop_type, register_type, monkeypatch):
    """What a worker that forks per job builds once before forking (RQ's work horses): the
    claims of every registered model and the outcomes of the common ends, with no
    connection opened; runs after it build nothing more."""
    from task_ferry import runner

    register_type("queries_nothing")
    monkeypatch.setattr(runner, "_claim_statements", {})
    monkeypatch.setattr(runner, "_outcome_statements", {})
    connection.close()
    runner.prepare_process()
    assert connection.connection is None
    claims, outcomes = dict(runner._claim_statements), dict(runner._outcome_statements)
    if not on_postgres:  # the ORM's statements elsewhere: nothing to build
        assert claims == outcomes == {}
        return
    assert {model for model, _ in claims} >= {Job, ScriptedJob, ExportJob}
    assert len(outcomes) == 4
    results = [
        run_job(_make(Job, type="queries_noop").pk, "queries_noop"),  # finished, a result
        run_job(_make(Job, type="queries_nothing").pk, None),  # finished, no result
        run_job(_make(ScriptedJob, steps=1, fail_with="boom").pk, "scripted"),  # failed
    ]
    assert [r.outcome for r in results] == [JOB_FINISHED, JOB_FINISHED, JOB_FAILED]
    assert runner._claim_statements == claims and runner._outcome_statements == outcomes
