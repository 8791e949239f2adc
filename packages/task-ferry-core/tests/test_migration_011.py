"""The upgrade path from django-task-ferry 0.1.1, inside core's own test database.

A database created by 0.1.1 has ``task_ferry.0001_initial`` and
``task_ferry.0002_add_ingestion_job`` recorded and holds 0.1.1's
``task_ferry_job`` table. These tests roll the test database back to exactly
that point, write rows the way 0.1.1 wrote them, migrate forward to the latest
migration and check that the current code reads and operates on those rows.

Runs on SQLite and PostgreSQL (``FERRY_TEST_DB=postgres``). The end-to-end
version against a database written by the real 0.1.1 package is
``tests/test_upgrade_from_011.py`` at the repository root.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

from task_ferry.exceptions import JobNotCancellable
from task_ferry.handler import JobHandler
from task_ferry.models import Job
from task_ferry.registry import JobType, job_type_registry

LAST_011 = ("task_ferry", "0002_add_ingestion_job")

#: Migrating task_ferry back to 0.1.1's last migration. The other apps of the
#: test project subclass ``Job`` with migrations built on newer task_ferry
#: migrations, so they go back to zero first.
BACK_TO_011 = [("testapp", None), ("task_ferry_testing", None), LAST_011]

#: The columns of ``task_ferry_job`` in a 0.1.1 database.
COLUMNS_011 = {
    "id",
    "state",
    "progress_percentage",
    "progress_state",
    "error",
    "human_readable_error",
    "created_at",
    "updated_at",
    "content_type_id",
    "user_id",
}

#: 0.1.1's ``Job`` fields after its two migrations, as ``Field.deconstruct()``
#: gives them (help texts left out). Databases in the wild were built from these.
FIELDS_011 = {
    "id": ("django.db.models.BigAutoField", {"auto_created": True, "primary_key": True, "serialize": False}),
    "state": ("django.db.models.CharField", {"db_index": True, "default": "pending", "max_length": 32}),
    "progress_percentage": ("django.db.models.IntegerField", {"default": 0}),
    "progress_state": ("django.db.models.CharField", {"blank": True, "default": "", "max_length": 255}),
    "error": ("django.db.models.TextField", {"blank": True, "default": ""}),
    "human_readable_error": ("django.db.models.TextField", {"blank": True, "default": ""}),
    "created_at": ("django.db.models.DateTimeField", {"auto_now_add": True, "db_index": True}),
    "updated_at": ("django.db.models.DateTimeField", {"auto_now": True}),
    "content_type": (
        "django.db.models.ForeignKey",
        {"on_delete": "CASCADE", "related_name": "task_ferry_jobs", "to": "contenttypes.contenttype"},
    ),
    "user": (
        "django.db.models.ForeignKey",
        {
            "blank": True,
            "null": True,
            "on_delete": "SET_NULL",
            "related_name": "task_ferry_jobs",
            "to": settings.AUTH_USER_MODEL.lower(),
        },
    ),
}

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

#: The rows a 0.1.1 deployment leaves behind: one per state it could write,
#: with distinct timestamps so ordering and exact values can be checked.
ROWS_011 = {
    "pending": {"state": "pending", "progress_percentage": 0, "progress_state": "", "error": ""},
    "started": {"state": "started", "progress_percentage": 40, "progress_state": "Writing row 3...", "error": ""},
    "finished": {"state": "finished", "progress_percentage": 100, "progress_state": "Finalising", "error": ""},
    "failed": {
        "state": "failed",
        "progress_percentage": 20,
        "progress_state": "Fetched rows",
        "error": "table 7 does not exist",
        "human_readable_error": "An error occurred while running the job: table 7 does not exist",
    },
}


class LegacyJobType(JobType):
    """A 0.1.1 user's type whose ``model_class`` is the base ``Job`` (0.1.1 allowed
    it), so its rows exist on ``task_ferry_job`` alone and need no other app's table."""

    type = "legacy_011"
    model_class = Job

    def run(self, job, progress):
        progress.increment(100, state="redone")
        return {"redone": job.pk}


def _deconstructed(field) -> tuple[str, dict]:
    _, path, _, kwargs = field.deconstruct()
    kwargs = {k: v for k, v in kwargs.items() if k not in ("help_text", "verbose_name")}
    if "on_delete" in kwargs:
        kwargs["on_delete"] = kwargs["on_delete"].__name__
    if "to" in kwargs:
        kwargs["to"] = str(kwargs["to"]).lower()
    return path, kwargs


def _columns(table: str) -> set[str]:
    with connection.cursor() as cursor:
        return {col.name for col in connection.introspection.get_table_description(cursor, table)}


def _migrate(targets) -> None:
    # A fresh executor each time: it reads the applied set when built.
    MigrationExecutor(connection).migrate(targets)


def test_011_migration_names_and_schema_are_kept():
    """0001/0002 keep 0.1.1's names, order and schema; every later migration builds on 0002."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    graph = loader.graph
    ours = sorted(name for app, name in loader.disk_migrations if app == "task_ferry")
    assert ours[:2] == ["0001_initial", "0002_add_ingestion_job"]
    assert [n for n in graph.root_nodes() if n[0] == "task_ferry"] == [("task_ferry", "0001_initial")]
    assert loader.disk_migrations[LAST_011].dependencies == [("task_ferry", "0001_initial")]
    for name in ours[2:]:
        assert LAST_011 in graph.forwards_plan(("task_ferry", name)), f"{name} does not build on 0.1.1's 0002"

    model = loader.project_state(LAST_011).apps.get_model("task_ferry", "Job")
    assert {f.name: _deconstructed(f) for f in model._meta.local_fields} == FIELDS_011
    assert model._meta.ordering == ("-created_at",)
    assert model._meta.db_table == "task_ferry_job"


@pytest.mark.django_db
def test_models_and_migrations_agree():
    """``makemigrations --check`` finds nothing to write for core and its kit app."""
    out = StringIO()
    try:
        call_command("makemigrations", "task_ferry", "task_ferry_testing", check=True, dry_run=True, stdout=out)
    except SystemExit:
        pytest.fail(f"models and migrations disagree; makemigrations would write:\n{out.getvalue()}")
    assert "No changes detected" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_rows_written_by_011_survive_the_upgrade_and_work():
    """Back to 0.1.1's schema, rows written as 0.1.1 wrote them, forward to the latest: every
    0.1.1 value is intact, new columns hold their defaults, and cancel / retry work on the rows."""
    leaves = MigrationExecutor(connection).loader.graph.leaf_nodes()
    job_type_registry.register(LegacyJobType())
    try:
        _migrate(BACK_TO_011)
        ids = _check_011_schema_and_insert_rows()
        _migrate(leaves)
        _check_upgraded_rows(ids)
    finally:
        # Whatever happened, hand the database back to the next test at the latest schema.
        _migrate(leaves)
        job_type_registry.unregister(LegacyJobType.type)


def _check_011_schema_and_insert_rows() -> dict[str, int]:
    """At 0.1.1's schema: check it, then write rows through the historical models."""
    applied = {name for app, name in MigrationRecorder(connection).applied_migrations() if app == "task_ferry"}
    assert applied == {"0001_initial", "0002_add_ingestion_job"}
    tables = set(connection.introspection.table_names())
    assert "task_ferry_job" in tables
    assert not {"task_ferry_progress", "testapp_exportjob", "task_ferry_testing_conformancejob"} & tables
    assert _columns("task_ferry_job") == COLUMNS_011

    old_apps = MigrationLoader(connection).project_state(LAST_011).apps
    OldJob = old_apps.get_model("task_ferry", "Job")
    OldUser = old_apps.get_model(settings.AUTH_USER_MODEL)
    OldContentType = old_apps.get_model("contenttypes", "ContentType")
    alice = OldUser.objects.create(username="alice")
    ct, _ = OldContentType.objects.get_or_create(app_label="task_ferry", model="job")

    ids = {}
    for i, (key, values) in enumerate(ROWS_011.items()):
        job = OldJob.objects.create(content_type=ct, user=alice, **values)
        # auto_now / auto_now_add ignore given values on save; pin them so they can be compared exactly.
        OldJob.objects.filter(pk=job.pk).update(
            created_at=T0 + timedelta(minutes=i), updated_at=T0 + timedelta(minutes=i, seconds=30)
        )
        ids[key] = job.pk
    return ids


def _check_upgraded_rows(ids: dict[str, int]) -> None:
    assert "task_ferry_progress" in connection.introspection.table_names()
    assert _columns("task_ferry_job") > COLUMNS_011
    alice = get_user_model().objects.get(username="alice")

    # Newest first, as 0.1.1's Meta.ordering promised.
    assert [j.pk for j in Job.objects.filter(user=alice)] == [ids[k] for k in reversed(ROWS_011)]

    new_fields = [f for f in Job._meta.concrete_fields if f.column not in COLUMNS_011]
    for i, (key, values) in enumerate(ROWS_011.items()):
        job = Job.objects.get(pk=ids[key])
        for name, value in values.items():
            assert getattr(job, name) == value, (key, name)
        if "human_readable_error" not in values:
            assert job.human_readable_error == ""
        assert job.user_id == alice.pk
        assert job.created_at == T0 + timedelta(minutes=i)
        assert job.updated_at == T0 + timedelta(minutes=i, seconds=30)
        assert (job.type, job.queue, job.priority, job.attempts, job.result) == ("", "default", 0, 0, None)
        for field in new_fields:
            assert getattr(job, field.attname) == field.get_default(), (key, field.name)
        assert type(job.specific) is Job and job.specific.pk == job.pk

    # The current handler operates on them.
    pending = JobHandler.cancel(alice, ids["pending"])
    pending.refresh_from_db()
    assert pending.state == "cancelled" and pending.finished_at is not None

    started = JobHandler.cancel(alice, ids["started"])
    started.refresh_from_db()
    assert started.state == "cancelled" and started.progress_percentage == 40

    for key in ("finished", "failed"):
        with pytest.raises(JobNotCancellable):
            JobHandler.cancel(alice, ids[key])
        assert Job.objects.get(pk=ids[key]).state == key

    # A failed 0.1.1 job can be retried: the runner claims the old row and runs it to the end.
    JobHandler.retry(ids["failed"], alice)
    retried = Job.objects.get(pk=ids["failed"])
    assert (retried.state, retried.attempts, retried.progress_percentage) == ("finished", 1, 100)
    assert (retried.error, retried.result) == ("", {"redone": ids["failed"]})
