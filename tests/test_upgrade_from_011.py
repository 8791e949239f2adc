"""A database written by the real django-task-ferry 0.1.1, upgraded to task-ferry-core.

One tiny Django project (written into a tmp dir by the test) is run twice,
unchanged, the way a user upgrades:

1. with 0.1.1 installed (a separate virtualenv): ``makemigrations`` for the
   project's app (so its migration depends on 0.1.1's ``0002``), ``migrate`` a
   fresh database, then create jobs through 0.1.1's own ``JobHandler`` and
   immediate executor: one finished, one failed, one left ``started`` by a
   worker that died mid-run, and one left pending (dispatch patched out);
2. with task-ferry-core installed (this interpreter): ``migrate`` the same
   database, then read the jobs back and operate on them with the current
   ``JobHandler``.

Runs against SQLite and PostgreSQL. Everything Django happens in subprocesses,
so the test needs no Django settings itself::

    .venv/bin/pytest tests/test_upgrade_from_011.py -p no:django

The 0.1.1 virtualenv is created from the package index on first use and cached
in ``.ferry/venv-011`` (gitignored); ``/tmp/v011`` is used instead if it
already has what the run needs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import venv
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
CACHED_VENV_011 = REPO / ".ferry" / "venv-011"
PREINSTALLED_VENV_011 = Path("/tmp/v011")
#: What the 0.1.1 side runs on: the last 0.1.1 release on the Django our core
#: supports, with a PostgreSQL driver so it can write the PostgreSQL variant.
REQUIREMENTS_011 = ["django-task-ferry==0.1.1", "django~=5.2.0", "psycopg[binary]>=3.2"]

PG = {
    "HOST": os.environ.get("FERRY_PG_HOST", "127.0.0.1"),
    "PORT": os.environ.get("FERRY_PG_PORT", "5432"),
    "USER": os.environ.get("FERRY_PG_USER", "postgres"),
}
PG_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"

# ── The user's project, identical for both versions ────────────────────────────

PROJECT_FILES = {
    "settings.py": """
        import json
        import os

        SECRET_KEY = "upgrade-from-011"
        USE_TZ = True
        DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
        INSTALLED_APPS = [
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "task_ferry",
            "reports",
        ]
        DATABASES = {"default": json.loads(os.environ["FERRY_UPGRADE_DATABASE"])}
        # A 0.1.1 settings dict: the dotted executor path is what 0.1.1's README showed.
        TASK_FERRY = {"EXECUTOR": "task_ferry.executors.immediate.ImmediateExecutor"}
    """,
    "manage.py": """
        import sys

        from django.core.management import execute_from_command_line

        execute_from_command_line(sys.argv)
    """,
    "reports/__init__.py": "",
    "reports/migrations/__init__.py": "",
    "reports/apps.py": """
        from django.apps import AppConfig


        class ReportsConfig(AppConfig):
            name = "reports"
            default_auto_field = "django.db.models.BigAutoField"

            def ready(self):
                from task_ferry.registry import job_type_registry

                from .job_types import ReportJobType

                job_type_registry.register(ReportJobType())
    """,
    "reports/models.py": """
        from django.db import models
        from task_ferry.models import Job


        class ReportJob(Job):
            report_name = models.CharField(max_length=100)
            rows = models.PositiveIntegerField(default=3)
            behaviour = models.CharField(max_length=20, default="ok")  # "ok", "fail" or "interrupt"
            rows_written = models.PositiveIntegerField(default=0)
    """,
    "reports/job_types.py": """
        from task_ferry.registry import JobType

        from .models import ReportJob


        class ReportJobType(JobType):
            type = "report"
            model_class = ReportJob

            def run(self, job, progress):
                stage = progress.create_child(represents=100, total=job.rows)
                for row in range(job.rows):
                    if row == 1 and job.behaviour == "fail":
                        raise RuntimeError(f"report {job.report_name!r}: row {row} is corrupt")
                    if row == 1 and job.behaviour == "interrupt":
                        # Escapes 0.1.1's `except Exception`, as a killed worker would: the job stays "started".
                        raise KeyboardInterrupt
                    stage.increment(state=f"row {row + 1} of {job.rows}")
                job.rows_written = job.rows
                job.save(update_fields=["rows_written"])
                return {"rows": job.rows}
    """,
    "probe_common.py": """
        import json

        import django
        from django.core.serializers.json import DjangoJSONEncoder

        django.setup()

        #: Every column 0.1.1 knew (base table and the app's own).
        FIELDS_011 = [
            "id", "state", "progress_percentage", "progress_state", "error", "human_readable_error",
            "created_at", "updated_at", "content_type_id", "user_id",
            "report_name", "rows", "behaviour", "rows_written",
        ]


        def rows(*extra):
            from reports.models import ReportJob

            return list(ReportJob.objects.order_by("pk").values(*FIELDS_011, *extra))


        def report(payload):
            print(json.dumps(payload, cls=DjangoJSONEncoder, sort_keys=True))
    """,
    # Run with 0.1.1: jobs written by 0.1.1's own handler and executor.
    "write_011.py": """
        from importlib.metadata import version
        from unittest import mock

        from probe_common import report, rows

        from django.contrib.auth import get_user_model
        from task_ferry.handler import JobHandler
        from reports.models import ReportJob

        alice = get_user_model().objects.create_user("alice")
        ids = {"finished": JobHandler.create_and_start(alice, "report", report_name="ok").pk}
        try:
            JobHandler.create_and_start(alice, "report", report_name="broken", behaviour="fail")
        except RuntimeError:  # 0.1.1's immediate executor re-raises after recording the failure
            pass
        ids["failed"] = ReportJob.objects.get(report_name="broken").pk
        try:
            JobHandler.create_and_start(alice, "report", report_name="killed", behaviour="interrupt")
        except KeyboardInterrupt:
            pass
        ids["started"] = ReportJob.objects.get(report_name="killed").pk
        with mock.patch("task_ferry.executors.immediate.ImmediateExecutor.enqueue"):
            ids["pending"] = JobHandler.create_and_start(alice, "report", report_name="queued").pk
        report({"version": version("django-task-ferry"), "ids": ids, "rows": rows()})
    """,
    # Run with task-ferry-core after `migrate`: read the 0.1.1 rows, then work with them.
    "after_upgrade.py": """
        import json
        import sys
        from importlib.metadata import version

        from probe_common import report, rows

        from django.contrib.auth import get_user_model
        from task_ferry.exceptions import TaskFerryError
        from task_ferry.handler import JobHandler
        from task_ferry.models import Job
        from reports.models import ReportJob

        NEW = ["type", "queue", "priority", "attempts", "result", "run_after", "started_at", "finished_at",
               "executor_task_id"]

        ids = json.loads(sys.argv[1])
        alice = get_user_model().objects.get(username="alice")
        read = rows(*NEW)
        specific = {key: type(Job.objects.get(pk=pk).specific).__name__ for key, pk in ids.items()}

        cancel = {}
        for key in ("pending", "started", "finished", "failed"):
            try:
                cancel[key] = JobHandler.cancel(alice, ids[key]).state
            except TaskFerryError as exc:
                cancel[key] = type(exc).__name__
        # The user fixes the report's input and retries the job 0.1.1 recorded as failed.
        ReportJob.objects.filter(pk=ids["failed"]).update(behaviour="ok")
        try:
            JobHandler.retry(ids["failed"], alice)
            retry = "ok"
        except TaskFerryError as exc:
            retry = f"{type(exc).__name__}: {exc}"
        new = JobHandler.create_and_start(alice, "report", report_name="after-upgrade")
        report({
            "version": version("task-ferry-core"),
            "read": read,
            "specific": specific,
            "cancel": cancel,
            "retry": retry,
            "new_id": new.pk,
            "final": rows(*NEW),
            "listed": [job.pk for job in JobHandler.get_jobs_for_user(alice)],
        })
    """,
}


def _write_project(root: Path) -> None:
    for name, text in PROJECT_FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())


# ── Interpreters ───────────────────────────────────────────────────────────────


def _run(cmd: list, *, cwd: Path | None = None, env: dict | None = None, timeout: int = 180) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")}
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env={**base, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _has_011(python: Path, *, postgres: bool) -> bool:
    if not python.exists():
        return False
    probe = "from importlib.metadata import version; print(version('django-task-ferry'))"
    if postgres:
        probe = "import psycopg; " + probe
    proc = subprocess.run([python, "-c", probe], capture_output=True, text=True)
    return proc.returncode == 0 and proc.stdout.strip() == "0.1.1"


def _python_011(*, postgres: bool) -> Path:
    """An interpreter with django-task-ferry 0.1.1 (and psycopg when ``postgres``)."""
    for root in (CACHED_VENV_011, PREINSTALLED_VENV_011):
        if _has_011(root / "bin" / "python", postgres=postgres):
            return root / "bin" / "python"
    # Built beside the cache and moved into place, so a run that dies half-way leaves no broken cache.
    staging = CACHED_VENV_011.with_name(f"{CACHED_VENV_011.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(staging)
    _run([staging / "bin" / "python", "-m", "pip", "install", "--quiet", *REQUIREMENTS_011], timeout=900)
    shutil.rmtree(CACHED_VENV_011, ignore_errors=True)
    try:
        staging.rename(CACHED_VENV_011)
    except OSError:  # a concurrent run put its copy in place first
        shutil.rmtree(staging, ignore_errors=True)
    python = CACHED_VENV_011 / "bin" / "python"
    assert _has_011(python, postgres=postgres), f"{CACHED_VENV_011} lacks {REQUIREMENTS_011} after installing them"
    return python


# ── Databases ──────────────────────────────────────────────────────────────────


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request, tmp_path_factory):
    """A fresh, empty database, as Django's ``DATABASES["default"]`` dict."""
    if request.param == "sqlite":
        yield {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path_factory.mktemp("db") / "upgrade.sqlite3")}
        return
    import psycopg

    name = f"ferry_upgrade_011_{os.getpid()}"
    try:
        admin = psycopg.connect(host=PG["HOST"], port=PG["PORT"], user=PG["USER"], dbname="postgres", autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable on {PG['HOST']}:{PG['PORT']} ({exc}). Start it with: {PG_START}")
    with admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield {"ENGINE": "django.db.backends.postgresql", "NAME": name, **PG}
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ── The upgrade, run once per database ─────────────────────────────────────────


@dataclass
class Upgrade:
    app_migration: str  # the user's app migration, as 0.1.1's makemigrations wrote it
    before: dict  # write_011.py's report
    migrate_output: str  # our `migrate` on the 0.1.1 database
    makemigrations_output: str  # our `makemigrations --check --dry-run reports`
    after: dict  # after_upgrade.py's report

    @property
    def ids(self) -> dict[str, int]:
        return self.before["ids"]

    @property
    def fields_011(self) -> list[str]:
        return list(self.before["rows"][0])

    def row(self, when: str, job: str | int) -> dict:
        """One job's row (by key in ``ids`` or by id) as 0.1.1 ``"wrote"`` it, as core first
        ``"read"`` it after the upgrade, or as it was ``"final"``-ly after the handler calls."""
        rows = {"wrote": self.before["rows"], "read": self.after["read"], "final": self.after["final"]}[when]
        pk = self.ids.get(job, job)
        (found,) = [row for row in rows if row["id"] == pk]
        return found


@pytest.fixture(scope="module")
def upgrade(database, tmp_path_factory) -> Upgrade:
    python_011 = _python_011(postgres=database["ENGINE"].endswith("postgresql"))
    python_new = Path(sys.executable)
    project = tmp_path_factory.mktemp("project")
    _write_project(project)
    env = {"DJANGO_SETTINGS_MODULE": "settings", "FERRY_UPGRADE_DATABASE": json.dumps(database)}

    def run(python: Path, *args: str) -> str:
        return _run([python, *args], cwd=project, env=env)

    # 0.1.1
    run(python_011, "manage.py", "makemigrations", "reports")
    run(python_011, "manage.py", "migrate")
    before = json.loads(run(python_011, "write_011.py").splitlines()[-1])
    # task-ferry-core: same project, same database
    migrate_output = run(python_new, "manage.py", "migrate")
    makemigrations_output = run(python_new, "manage.py", "makemigrations", "--check", "--dry-run", "reports")
    after = json.loads(run(python_new, "after_upgrade.py", json.dumps(before["ids"])).splitlines()[-1])
    return Upgrade(
        app_migration=(project / "reports" / "migrations" / "0001_initial.py").read_text(),
        before=before,
        migrate_output=migrate_output,
        makemigrations_output=makemigrations_output,
        after=after,
    )


# ── Tests ──────────────────────────────────────────────────────────────────────


def test_011_left_the_database_a_011_deployment_leaves(upgrade):
    """The starting point is real: 0.1.1 built the schema and wrote one job per state it can leave."""
    assert upgrade.before["version"] == "0.1.1"
    assert "('task_ferry', '0002_add_ingestion_job')" in upgrade.app_migration
    assert {key: upgrade.row("wrote", key)["state"] for key in upgrade.ids} == {
        "finished": "finished",
        "failed": "failed",
        "started": "started",
        "pending": "pending",
    }
    assert upgrade.row("wrote", "failed")["error"] == "report 'broken': row 1 is corrupt"
    assert upgrade.row("wrote", "finished")["rows_written"] == 3


def test_migrate_applies_only_the_new_migrations(upgrade):
    """0.1.1's migrations are recognised as applied by name (running 0001 again would fail on
    the existing table); the user's app needs no new migration."""
    assert "Applying task_ferry." in upgrade.migrate_output
    for already in ("task_ferry.0001_initial", "task_ferry.0002_add_ingestion_job", "reports.0001_initial"):
        assert f"Applying {already}" not in upgrade.migrate_output
    assert "No changes detected" in upgrade.makemigrations_output


def test_011_rows_read_back_unchanged_with_new_fields_at_defaults(upgrade):
    after = upgrade.after
    assert after["version"] != "0.1.1"
    fields_011 = upgrade.fields_011
    assert [{k: row[k] for k in fields_011} for row in after["read"]] == upgrade.before["rows"]
    for row in after["read"]:
        assert {k: v for k, v in row.items() if k not in fields_011} == {
            "type": "",
            "queue": "default",
            "priority": 0,
            "attempts": 0,
            "result": None,
            "run_after": None,
            "started_at": None,
            "finished_at": None,
            "executor_task_id": "",
        }
    assert after["specific"] == dict.fromkeys(upgrade.ids, "ReportJob")


def test_current_handler_works_on_011_rows(upgrade):
    after = upgrade.after
    assert after["cancel"] == {
        "pending": "cancelled",
        "started": "cancelled",
        "finished": "JobNotCancellable",
        "failed": "JobNotCancellable",
    }
    assert upgrade.row("final", "finished") == upgrade.row("read", "finished")  # a refused cancel writes nothing
    pending = upgrade.row("final", "pending")
    assert (pending["state"], pending["rows_written"], pending["attempts"]) == ("cancelled", 0, 0)
    assert pending["finished_at"] is not None
    assert upgrade.row("final", "started")["state"] == "cancelled"
    new = upgrade.row("final", after["new_id"])
    assert (new["type"], new["state"], new["attempts"], new["result"]) == ("report", "finished", 1, {"rows": 3})
    # Old and new rows list together, newest first.
    ids = upgrade.ids
    assert after["listed"] == [after["new_id"], ids["pending"], ids["started"], ids["failed"], ids["finished"]]


def test_failed_011_job_is_retried_by_id(upgrade):
    """The user fixes the input and retries, by id, a job 0.1.1 recorded as failed: the runner
    claims the old row and runs the 0.1.1-era job type code to the end."""
    assert upgrade.after["retry"] == "ok"
    retried = upgrade.row("final", "failed")
    assert (retried["state"], retried["attempts"], retried["rows_written"]) == ("finished", 1, 3)
    assert (retried["error"], retried["progress_percentage"], retried["result"]) == ("", 100, {"rows": 3})
