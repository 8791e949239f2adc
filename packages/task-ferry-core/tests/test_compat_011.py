"""The django-task-ferry 0.1.1 README, as tests.

Each test follows a README example as written (import paths, call shapes,
settings) and checks what the README promises. Where the README itself is wrong
about 0.1.1, the test says so and checks the intended behaviour.
"""

from __future__ import annotations

import ast
import importlib
from datetime import timedelta
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.test import override_settings
from django.utils import timezone
from ferry_core_testproject.testapp.job_types import ExportJobType
from ferry_core_testproject.testapp.models import ExportJob

from task_ferry.exceptions import (
    ExecutorNotConfigured,
    JobCancelled,
    JobDoesNotExist,
    JobNotCancellable,
    JobTypeNotRegistered,
    MaxJobCountExceeded,
)
from task_ferry.executors.base import BaseExecutor
from task_ferry.executors.immediate import ImmediateExecutor
from task_ferry.handler import JobHandler
from task_ferry.models import (
    JOB_CANCELLED,
    JOB_FINISHED,
    JOB_PENDING,
    JOB_STATES_ENDED,
    Job,
)
from task_ferry.progress import Progress
from task_ferry.registry import JobType, job_type_registry

V011 = Path("/tmp/v011/lib/python3.11/site-packages/task_ferry")

#: 0.1.1 names deliberately not carried over: ``models.User`` was only the result
#: of ``get_user_model()`` imported for the ForeignKey, not API.
NOT_CARRIED_OVER = {("task_ferry.models", "User")}


@pytest.fixture
def user(db):
    return get_user_model().objects.create_user("alice")


@pytest.fixture
def enqueue_does_nothing(monkeypatch):
    """The README's recipe for keeping a job pending."""
    monkeypatch.setattr(ImmediateExecutor, "enqueue", lambda self, job_id, queue=None: None)


# ── Public names ───────────────────────────────────────────────────────────────


def _public_api_011(relative: str) -> dict[str, set[str]]:
    """Top-level public names of a 0.1.1 module, and the public members of its classes."""
    tree = ast.parse((V011 / relative).read_text())
    api: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            api[node.name] = {
                m.name
                for m in node.body
                if isinstance(m, ast.FunctionDef | ast.AsyncFunctionDef) and not m.name.startswith("_")
            }
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            api.update({t.id: set() for t in targets if isinstance(t, ast.Name)})
    # 0.1.1 also exposed its registry class under a private name; code imported it.
    return {name: members for name, members in api.items() if not name.startswith("_") or name == "_JobTypeRegistry"}


@pytest.mark.parametrize(
    "module,relative",
    [
        ("task_ferry.models", "models.py"),
        ("task_ferry.registry", "registry.py"),
        ("task_ferry.handler", "handler.py"),
        ("task_ferry.progress", "progress.py"),
        ("task_ferry.exceptions", "exceptions.py"),
        ("task_ferry.executors.immediate", "executors/immediate.py"),
        ("task_ferry.executors.base", "executors/base.py"),
        ("task_ferry.conf", "conf.py"),
    ],
)
def test_every_011_public_name_still_imports(module, relative):
    """Every public module-level name and public method of 0.1.1's modules exists
    at the same import path (read from the 0.1.1 source, not a list kept here)."""
    if not (V011 / relative).exists():
        pytest.skip(f"0.1.1 source not found at {V011}")
    current = importlib.import_module(module)
    api = _public_api_011(relative)
    assert api, "nothing parsed from the 0.1.1 module"
    for name, members in api.items():
        if (module, name) in NOT_CARRIED_OVER:
            continue
        assert hasattr(current, name), f"{module}.{name} is gone"
        for member in members:
            assert hasattr(getattr(current, name), member), f"{module}.{name}.{member} is gone"


def test_exceptions_are_still_exceptions():
    for exc in (JobDoesNotExist, JobCancelled, JobNotCancellable, JobTypeNotRegistered, MaxJobCountExceeded):
        assert issubclass(exc, Exception)
    assert issubclass(ExecutorNotConfigured, Exception)


# ── Defining a type ────────────────────────────────────────────────────────────


def test_type_registered_in_app_config_ready_is_available():
    """Step 3: ``job_type_registry.register(ExportJobType())`` in ``AppConfig.ready()``."""
    assert apps.get_app_config("testapp").ready
    job_type = job_type_registry.get("export_table")
    assert isinstance(job_type, ExportJobType) and isinstance(job_type, JobType)
    assert job_type.model_class is ExportJob
    # ready() may run twice (some test runners, autoreload): registering again is harmless.
    assert job_type_registry.register(ExportJobType()) is job_type
    assert isinstance(job_type_registry.get_by_model(ExportJob(table_id=1)), ExportJobType)
    assert job_type in job_type_registry.all()


# ── Dispatching and polling ────────────────────────────────────────────────────


def test_export_creates_file(user):
    """The README's own test, verbatim."""
    job = JobHandler.create_and_start(user, "export_table", table_id=1)
    job.refresh_from_db()
    assert job.state == "finished"
    assert job.output_path != ""


def test_dispatch_for_a_user_and_for_the_system(user):
    for owner in (user, None):
        job = JobHandler.create_and_start(user=owner, job_type_name="export_table", table_id=42)
        assert isinstance(job, ExportJob) and job.pk is not None
        job.refresh_from_db()
        assert (job.state, job.progress_percentage, job.user) == (JOB_FINISHED, 100, owner)


def test_polling_an_ended_job(user):
    job = JobHandler.create_and_start(user, "export_table", table_id=42)
    polled = JobHandler.get_job(user, job.id)
    assert isinstance(polled, Job)
    assert polled.is_finished and polled.has_ended
    assert not (polled.is_pending or polled.is_running or polled.is_failed or polled.is_cancelled)
    assert polled.get_cached_state() == "finished"
    assert polled.get_cached_progress_percentage() == 100
    assert polled.get_cached_progress_state() == "Finalising"
    assert polled.specific.output_path == "/exports/result.csv"
    assert JobHandler.get_job(None, job.id).pk == job.pk
    assert JobHandler.get_job(user, job.id, model_class=ExportJob).table_id == 42
    other = get_user_model().objects.create_user("mallory")
    with pytest.raises(JobDoesNotExist):
        JobHandler.get_job(other, job.id)


def test_polling_a_job_mid_run(transactional_db, user, enqueue_does_nothing):
    """Progress published from the worker (``set_progress``) is what pollers read
    before the row is updated; ``clear_cache`` falls back to the row. (Committed
    data: on SQLite the default database store cannot write while this
    connection holds a transaction open, which the ``db`` fixture does.)"""
    job = JobHandler.create_and_start(user, "export_table", table_id=7)
    assert job.is_pending and not job.has_ended
    worker_view = Job.objects.get(pk=job.pk)
    worker_view.mark_started()
    poller_view = JobHandler.get_job(user, job.id)
    assert poller_view.is_running
    worker_view.set_progress(43, "Writing row 430...")
    assert poller_view.get_cached_progress_percentage() == 43
    assert poller_view.get_cached_progress_state() == "Writing row 430..."
    assert poller_view.progress_percentage == 0  # the row itself is untouched mid-run
    worker_view.clear_cache()
    assert poller_view.get_cached_progress_percentage() == 0


def test_get_jobs_for_user(user, enqueue_does_nothing):
    first = JobHandler.create_and_start(user, "export_table", table_id=1)
    second = JobHandler.create_and_start(user, "export_table", table_id=2)
    Job.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(minutes=1))
    jobs = JobHandler.get_jobs_for_user(
        user=user,
        states=["pending", "started"],
        job_type_name="export_table",
        limit=20,
        offset=0,
    )
    assert [j.pk for j in jobs] == [second.pk, first.pk]  # ordering = ("-created_at",)
    assert [j.pk for j in JobHandler.get_jobs_for_user(user, limit=1, offset=1)] == [first.pk]


def test_max_count_per_user(user, enqueue_does_nothing):
    """``ExportJobType.max_count = 2``."""
    JobHandler.create_and_start(user, "export_table", table_id=1)
    JobHandler.create_and_start(user, "export_table", table_id=2)
    with pytest.raises(MaxJobCountExceeded):
        JobHandler.create_and_start(user, "export_table", table_id=3)
    assert JobHandler.create_and_start(None, "export_table", table_id=3).pk  # system jobs are not limited


def test_immediate_executor_raises_the_jobs_exception(db):
    """0.1.1: "Exceptions propagate to the caller", and the job is recorded failed."""
    with pytest.raises(RuntimeError, match="disk full"):
        JobHandler.create_and_start(None, "scripted", steps=1, fail_with="disk full")
    job = Job.objects.get()
    assert job.is_failed and job.error == "disk full"
    assert job.human_readable_error == "An error occurred while running the job: disk full"


# ── Cancelling ─────────────────────────────────────────────────────────────────


def test_cancel_cleans_up(user, enqueue_does_nothing):
    """The README's cancellation test. It asserts on the original ``job`` object,
    which 0.1.1 itself never updated (its ``cancel`` loads and saves a fresh
    instance), so that line failed on 0.1.1 too: we refresh first, then check the
    job never runs once cancelled."""
    job = JobHandler.create_and_start(user, "export_table", table_id=1)
    returned = JobHandler.cancel(user, job.id)
    job.refresh_from_db()
    assert job.state == "cancelled"
    assert returned.state == "cancelled" and returned.is_cancelled
    assert JobHandler.cancel(user, job.id).state == "cancelled"  # idempotent, as in 0.1.1
    JobHandler.run_by_id(job.id)  # a late delivery of the dispatched task
    job.refresh_from_db()
    assert (job.state, job.output_path) == (JOB_CANCELLED, "")


def test_cancel_ended_or_someone_elses_job(user):
    job = JobHandler.create_and_start(user, "export_table", table_id=1)
    with pytest.raises(JobNotCancellable):
        JobHandler.cancel(user, job.id)
    other = get_user_model().objects.create_user("mallory")
    with pytest.raises(JobDoesNotExist):
        JobHandler.cancel(other, job.id)


def test_job_cancelled_raised_in_run_cancels_and_calls_on_cancelled(db):
    """``run`` may raise ``JobCancelled`` itself; the job ends cancelled and
    ``on_cancelled`` is called (0.1.1 ``JobHandler.run``)."""
    job_type = job_type_registry.get("scripted")

    def run(job, progress):
        progress.increment(30)
        raise JobCancelled()

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(job_type, "run", run)
        job = JobHandler.create_and_start(None, "scripted")
    job.refresh_from_db()
    assert job.state == JOB_CANCELLED and job.hook_calls.count("on_cancelled") == 1


# ── Progress ───────────────────────────────────────────────────────────────────


def test_progress_children_with_unequal_weights():
    progress = Progress(total=100)
    seen = []
    progress.register_updated_event(lambda pct, state: seen.append((pct, state)))
    progress.increment(10, state="Fetching...")
    process = progress.create_child(represents=70, total=5)
    for item in "abcde":
        process.increment(state=f"Processing {item}...")
    progress.increment(20, state="Done")
    assert seen[0] == (10, "Fetching...") and seen[-1] == (100, "Done")
    assert [pct for pct, _ in seen] == [10, 24, 38, 52, 66, 80, 100]

    # "Multiple children can be created up front and advanced independently."
    progress = Progress(total=100)
    a, b = progress.create_child(represents=50, total=2), progress.create_child(represents=50, total=4)
    a.increment()
    b.increment()
    a.increment()
    assert progress.percentage == 62
    assert progress.create_child(represents=10, total=1).percentage == 0


# ── Cleanup ────────────────────────────────────────────────────────────────────


def test_periodic_cleanup(user, enqueue_does_nothing):
    old_finished = JobHandler.create_and_start(None, "export_table", table_id=1)
    old_pending = JobHandler.create_and_start(None, "export_table", table_id=2)
    new_finished = JobHandler.create_and_start(None, "export_table", table_id=3)
    Job.objects.filter(pk__in=[old_finished.pk, new_finished.pk]).update(state=JOB_FINISHED)
    Job.objects.filter(pk__in=[old_finished.pk, old_pending.pk]).update(created_at=timezone.now() - timedelta(days=8))

    deleted_count = JobHandler.cleanup_old_jobs()

    assert deleted_count == 1
    assert set(Job.objects.values_list("pk", flat=True)) == {old_pending.pk, new_finished.pk}
    assert not ExportJob.objects.filter(pk=old_finished.pk).exists()
    assert JOB_PENDING not in JOB_STATES_ENDED


# ── Settings and executors ─────────────────────────────────────────────────────


def test_legacy_immediate_executor_setting(user):
    with override_settings(TASK_FERRY={"EXECUTOR": "task_ferry.executors.immediate.ImmediateExecutor"}):
        job = JobHandler.create_and_start(user, "export_table", table_id=5)
    job.refresh_from_db()
    assert job.state == JOB_FINISHED


class LegacyInlineExecutor(BaseExecutor):
    """A 0.1.1-style custom executor: subclasses ``BaseExecutor``, implements only
    ``enqueue(job_id, queue=None)``, takes no constructor arguments."""

    calls: list = []

    def __init__(self):
        pass

    def enqueue(self, job_id, queue=None):
        LegacyInlineExecutor.calls.append((job_id, queue))
        JobHandler.run_by_id(job_id)


class DuckTypedExecutor:
    """0.1.1's contract at its smallest: any class with ``enqueue``."""

    calls: list = []

    def enqueue(self, job_id, queue=None):
        DuckTypedExecutor.calls.append((job_id, queue))
        JobHandler.run_by_id(job_id)


@pytest.mark.parametrize("executor", [LegacyInlineExecutor, DuckTypedExecutor])
def test_011_custom_executors_still_dispatch(user, executor):
    executor.calls = []
    with override_settings(TASK_FERRY={"EXECUTOR": f"{__name__}.{executor.__name__}"}):
        job = JobHandler.create_and_start(user, "export_table", table_id=9)
    assert executor.calls == [(job.pk, "exports")]  # the type's queue, as 0.1.1 passed it
    job.refresh_from_db()
    assert job.state == JOB_FINISHED
