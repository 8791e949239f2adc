"""The executor without a worker: capabilities per backend, OPTIONS, system checks, how a
dispatch maps onto the task framework, the import fallback, and the ``task_finished``
receiver on the immediate backend (where the framework runs the task inline)."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
from django.core.checks import Error
from django.utils import timezone

from task_ferry import runner, signals
from task_ferry.conf import get_executor
from task_ferry.exceptions import ExecutorNotConfigured
from task_ferry.handler import JobHandler
from task_ferry.testing.jobs import CONFORMANCE_TYPE
from task_ferry.testing.models import ConformanceJob
from task_ferry_django_tasks import compat
from task_ferry_django_tasks.executor import DjangoTasksExecutor
from task_ferry_django_tasks.tasks import TASK_PATH, TaskFrameworkError, run_ferry_job

FLAGS = ("supports_defer_on_commit", "out_of_process", "supports_queues", "supports_priority", "supports_delay")


def use_executor(settings, **options):
    settings.TASK_FERRY = {**settings.TASK_FERRY, "EXECUTOR": {"BACKEND": "django_tasks", "OPTIONS": options}}
    return get_executor()


# ── Capabilities ───────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("backend", "params", "expected"),
    [
        # Runs inline inside enqueue(): nothing to defer, route, order or delay.
        ("immediate", {}, (False, False, False, False, False)),
        # django-tasks-db: a worker process, queues, priority and run_after.
        ("django_tasks_db.DatabaseBackend", {"QUEUES": []}, (True, True, True, True, True)),
        # The framework's dummy backend keeps results and never runs them; it declares defer and priority.
        ("dummy", {}, (True, True, True, True, True)),
    ],
)
def test_capabilities_follow_the_backend(settings, backend, params, expected):
    path = {
        "immediate": f"{compat.FRAMEWORK}.backends.immediate.ImmediateBackend",
        "dummy": f"{compat.FRAMEWORK}.backends.dummy.DummyBackend",
    }.get(backend, backend)
    settings.TASKS = {**settings.TASKS, "under_test": {"BACKEND": path, **params}}
    executor = use_executor(settings, BACKEND_ALIAS="under_test")
    assert tuple(getattr(executor, flag) for flag in FLAGS) == expected
    assert (executor.supports_revoke, executor.supports_kill) == (False, False)
    assert executor.check() == []


def test_a_backend_without_priority_or_defer_is_declared_so(settings):
    settings.TASKS = {**settings.TASKS, "plain": {"BACKEND": "ferry_dt_testproject.backends.PlainBackend"}}
    executor = use_executor(settings, BACKEND_ALIAS="plain")
    assert tuple(getattr(executor, flag) for flag in FLAGS) == (True, True, True, False, False)


def test_changing_tasks_rebuilds_the_executor(settings):
    before = use_executor(settings, BACKEND_ALIAS="default")
    assert before.out_of_process
    settings.TASKS = {**settings.TASKS, "default": {"BACKEND": settings.IMMEDIATE_BACKEND}}
    after = get_executor()
    assert after is not before
    assert not after.out_of_process and not after.supports_defer_on_commit


# ── OPTIONS and checks ─────────────────────────────────────────────────────────


def test_unknown_options_are_refused(settings):
    with pytest.raises(ValueError, match=r"unknown OPTIONS \['QUEUE'\].*BACKEND_ALIAS"):
        DjangoTasksExecutor({"QUEUE": "x"})
    with pytest.raises(ValueError, match="BACKEND_ALIAS must be"):
        DjangoTasksExecutor({"BACKEND_ALIAS": ""})
    # Through core: the setting is rejected with the plugin's reason.
    with pytest.raises(ExecutorNotConfigured, match="unknown OPTIONS"):
        use_executor(settings, QUEUE="x")


def test_missing_backend_alias_is_a_check_error_and_fails_the_dispatch(settings, transactional_db):
    from task_ferry.checks import check_settings

    executor = use_executor(settings, BACKEND_ALIAS="nope")
    errors = [e for e in check_settings() if e.id == "task_ferry_django_tasks.E001"]
    assert len(errors) == 1 and "'nope'" in errors[0].msg
    with pytest.raises(Exception, match="nope") as raised:
        JobHandler.create_and_start(None, CONFORMANCE_TYPE)
    assert raised.value is executor.backend_error
    job = ConformanceJob.objects.get()
    # Dispatch is after commit: the refused job is recorded failed, not left pending.
    assert job.state == "failed" and job.error.startswith("dispatch failed")


def test_a_queue_the_backend_does_not_accept_is_a_check_error(settings, transactional_db):
    settings.TASKS = {**settings.TASKS, "default": {**settings.TASKS["default"], "QUEUES": ["default", "reports"]}}
    assert use_executor(settings).check() == []
    settings.TASK_FERRY = {**settings.TASK_FERRY, "DEFAULT_QUEUE": "exports"}
    errors = get_executor().check()
    assert [type(e) for e in errors] == [Error]
    assert errors[0].id == "task_ferry_django_tasks.E002"
    assert f"{CONFORMANCE_TYPE!r}" in errors[0].msg and "'exports'" in errors[0].msg
    # Dispatched anyway: the framework refuses it inside the job's transaction (the queue is in
    # the job's database), so the call raises and nothing is written, neither job nor task.
    with pytest.raises(Exception, match="Queue 'exports' is not valid for backend"):
        JobHandler.create_and_start(None, CONFORMANCE_TYPE)
    assert not ConformanceJob.objects.exists()
    # A backend that enqueues elsewhere refuses it after the commit: the job is recorded
    # failed rather than left pending.
    plain = {"BACKEND": "ferry_dt_testproject.backends.PlainBackend", "QUEUES": ["default"]}
    settings.TASKS = {**settings.TASKS, "plain": plain}
    use_executor(settings, BACKEND_ALIAS="plain")
    with pytest.raises(Exception, match="Queue 'exports' is not valid for backend"):
        JobHandler.create_and_start(None, CONFORMANCE_TYPE)
    job = ConformanceJob.objects.get()
    assert job.state == "failed" and "is not valid for backend" in job.error


# ── Enqueueing in the job's transaction (a queue in the job's database) ────────


def test_the_database_backend_enqueues_in_the_jobs_transaction(settings, transactional_db):
    from django.db import connection, transaction
    from django_tasks_db.models import DBTaskResult

    assert use_executor(settings, BACKEND_ALIAS="default").queue_database == "default"
    settings.TASKS = {**settings.TASKS, "plain": {"BACKEND": "ferry_dt_testproject.backends.PlainBackend"}}
    assert use_executor(settings, BACKEND_ALIAS="plain").queue_database is None
    use_executor(settings, BACKEND_ALIAS="default")

    # Every write of a create, the task's INSERT and the recording of its id included, is
    # made in the one transaction: one commit.
    writes, outside = [], []

    def watch(execute, sql, params, many, context):
        if sql.split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            (writes if connection.in_atomic_block else outside).append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(watch):
        job = JobHandler.create_and_start(None, CONFORMANCE_TYPE)
    assert outside == [] and len(writes) >= 3  # the job, its task, the task's id on the job
    job.refresh_from_db()
    assert job.executor_task_id == str(DBTaskResult.objects.get().id)

    # Rolled back, the task goes with the job: no task for a job that does not exist.
    with pytest.raises(RuntimeError, match="changed my mind"), transaction.atomic():
        rolled_back = JobHandler.create_and_start(None, CONFORMANCE_TYPE)
        assert DBTaskResult.objects.filter(args_kwargs__args__0=rolled_back.pk).exists()
        raise RuntimeError("changed my mind")
    assert not ConformanceJob.objects.filter(pk=rolled_back.pk).exists()
    assert DBTaskResult.objects.count() == 1

    # create_many: all the tasks in the jobs' transaction, each job with its task's id.
    jobs = JobHandler.create_many(None, CONFORMANCE_TYPE, [{}, {}, {}])
    tasks = {row.args_kwargs["args"][0]: str(row.id) for row in DBTaskResult.objects.all()}
    assert {j.pk: j.executor_task_id for j in ConformanceJob.objects.filter(pk__in=[j.pk for j in jobs])} == {
        j.pk: tasks[j.pk] for j in jobs
    }


# ── What a dispatch becomes ────────────────────────────────────────────────────


def test_dispatch_maps_queue_priority_and_run_after_onto_the_database_backend(settings, transactional_db):
    from django_tasks_db.models import DBTaskResult

    use_executor(settings, BACKEND_ALIAS="default")
    run_after = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    job = JobHandler.create_and_start(None, CONFORMANCE_TYPE, queue="reports", priority=40, run_after=run_after)
    row = DBTaskResult.objects.get()
    assert row.task_path == TASK_PATH == "task_ferry_django_tasks.tasks.run_ferry_job"
    assert (row.queue_name, row.priority, row.run_after, row.status) == ("reports", 40, run_after, "READY")
    assert row.backend_name == "default"
    original_task_id = row.args_kwargs["args"][2]
    assert row.args_kwargs == {"args": [job.pk, CONFORMANCE_TYPE, original_task_id], "kwargs": {}}
    job.refresh_from_db()
    # The framework chose its own id; core recorded it on the job.
    assert job.executor_task_id == str(row.id) != original_task_id
    assert job.state == "pending"


def test_the_immediate_backend_ignores_what_it_cannot_honour(settings, transactional_db):
    # Its QUEUES leave "reports" out: the queue is not passed, so the job is neither refused nor delayed.
    settings.TASKS = {**settings.TASKS, "immediate": {"BACKEND": settings.IMMEDIATE_BACKEND, "QUEUES": ["default"]}}
    use_executor(settings, BACKEND_ALIAS="immediate")
    job = JobHandler.create_and_start(
        None, CONFORMANCE_TYPE, queue="reports", priority=40, run_after=timezone.now() + timedelta(hours=1)
    )
    job.refresh_from_db()
    assert (job.state, job.body_runs, job.queue, job.priority) == ("finished", 1, "reports", 40)


# ── Failures the task framework records (the task_finished receiver) ───────────


@pytest.fixture
def failed_signals():
    received = []

    def receiver(sender, job, exc, **kwargs):
        received.append((job.pk, job.state, exc))

    signals.job_failed.connect(receiver, weak=False, dispatch_uid="test-dt-failed")
    yield received
    signals.job_failed.disconnect(dispatch_uid="test-dt-failed")


def test_a_task_that_fails_before_the_runner_records_its_job_failed(
    settings, transactional_db, monkeypatch, failed_signals
):
    """The immediate backend swallows a task's exception into the task result; without the
    receiver the job would stay pending for good."""

    def lost_connection(job_id, job_type=None):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(runner, "run_job", lost_connection)
    use_executor(settings, BACKEND_ALIAS="immediate")
    job = JobHandler.create_and_start(None, CONFORMANCE_TYPE)  # no exception reaches the caller
    job.refresh_from_db()
    assert job.state == "failed"
    assert job.error.endswith("failed in the task framework: RuntimeError: the database went away")
    assert job.body_runs == 0 and job.finished_at is not None
    [(pk, state, exc)] = failed_signals
    assert (pk, state) == (job.pk, "failed") and isinstance(exc, TaskFrameworkError)


def test_a_failed_task_of_another_dispatch_leaves_the_job_alone(
    settings, transactional_db, monkeypatch, failed_signals
):
    """Only the job's current dispatch may fail it: a stale or duplicate task that fails does not."""
    from task_ferry.testing.base import create_pending_job

    monkeypatch.setattr(runner, "run_job", lambda job_id, job_type=None: 1 / 0)
    job = create_pending_job()
    task = run_ferry_job.using(backend="immediate")
    result = task.enqueue(job.pk, CONFORMANCE_TYPE, "not-this-jobs-dispatch")
    assert str(result.status) == "FAILED"  # the framework did record the failure...
    job.refresh_from_db()
    assert job.state == "pending" and failed_signals == []  # ...and the job is untouched
    # The job's own dispatch id is matched.
    task.enqueue(job.pk, CONFORMANCE_TYPE, job.executor_task_id)
    job.refresh_from_db()
    assert job.state == "failed" and "ZeroDivisionError" in job.error


@pytest.mark.skipif(
    len(compat.TASK_FINISHED_SIGNALS) < 2,
    reason="needs both task frameworks importable: Django 6 with the django-tasks backport installed",
)
def test_a_backport_backend_on_django_6_is_heard_too(settings, transactional_db, monkeypatch, failed_signals):
    """On Django 6 a TASKS backend may still be a backport class; it sends the backport's signals."""
    settings.TASKS = {**settings.TASKS, "backport": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    executor = use_executor(settings, BACKEND_ALIAS="backport")
    assert not executor.out_of_process  # the backport's immediate backend is recognised as inline too
    monkeypatch.setattr(runner, "run_job", lambda job_id, job_type=None: 1 / 0)
    job = JobHandler.create_and_start(None, CONFORMANCE_TYPE)
    job.refresh_from_db()
    assert job.state == "failed" and "ZeroDivisionError" in job.error
    assert [pk for pk, _, _ in failed_signals] == [job.pk]


# ── Packaging ──────────────────────────────────────────────────────────────────


def test_entry_point_and_legacy_path_resolve_to_the_executor():
    from task_ferry.plugins import EXECUTORS

    assert EXECUTORS.load("django_tasks") is DjangoTasksExecutor
    assert EXECUTORS.load("task_ferry.executors.django_tasks.DjangoTasksExecutor") is DjangoTasksExecutor
    from task_ferry.executors.django_tasks import DjangoTasksExecutor as legacy

    assert legacy is DjangoTasksExecutor


def test_without_a_task_framework_the_import_names_the_fix():
    code = (
        "import sys\n"
        "sys.modules['django.tasks'] = sys.modules['django_tasks'] = None  # neither framework importable\n"
        "try:\n"
        "    import task_ferry_django_tasks.executor\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
        "from task_ferry.plugins import EXECUTORS, PluginNotFound\n"
        "try:\n"
        "    EXECUTORS.load('django_tasks')\n"
        "except PluginNotFound as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    direct, through_core = done.stdout.strip().splitlines()
    assert 'pip install "task-ferry-django-tasks[backport]"' in direct
    assert "Django 6 has it built in" in direct
    assert "failed to import" in through_core and "task-ferry-django-tasks[backport]" in through_core
