"""``manage.py ferry``: output, live progress, exit codes, and a real subprocess run.

Jobs are written to the real test database and snapshots to the configured
(``database``) progress store, so these tests use ``transactional_db``: the
store writes through its own connection, and subprocesses must see the rows.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from datetime import timedelta
from importlib import metadata
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.test import override_settings
from django.utils import timezone
from ferry_core_testproject.testapp.models import ExportJob, ScriptedJob

from task_ferry import conf
from task_ferry.handler import JobHandler
from task_ferry.models import Job
from task_ferry.protocols import Snapshot
from task_ferry.runner import run_job
from task_ferry.stores.database import DatabaseProgressStore

pytestmark = pytest.mark.django_db(transaction=True)

TESTS_DIR = Path(__file__).resolve().parent
FAST = {"EXECUTOR": "immediate", "PROGRESS_STORE": "database", "PROGRESS_FLUSH_INTERVAL": 0.02}


# ── helpers ────────────────────────────────────────────────────────────────────


def make(model=ScriptedJob, job_type="scripted", **fields):
    """A job row written directly (not dispatched), in whatever state the test needs."""
    ct = ContentType.objects.get_for_model(model, for_concrete_model=False)
    return model.objects.create(content_type=ct, type=job_type, **fields)


def publish(job, pct, label="", state="started"):
    conf.get_progress_store().write(Snapshot(job.pk, state, pct, label, time.time()))


def ferry(*args, stdout=None):
    """Run the command in-process; returns (stdout text, stderr text)."""
    out, err = stdout or io.StringIO(), io.StringIO()
    call_command("ferry", *[str(a) for a in args], stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def ferry_error(*args) -> CommandError:
    with pytest.raises(CommandError) as excinfo:
        ferry(*args)
    return excinfo.value


@pytest.fixture
def alice():
    return get_user_model().objects.create_user("alice")


@pytest.fixture
def jobs(alice):
    """One job per interesting situation; running ones have a live snapshot ahead of the DB."""
    finished = make(
        ExportJob,
        "export_table",
        table_id=7,
        queue="exports",
        user=alice,
        state="finished",
        progress_percentage=100,
        progress_state="Finalising",
        output_path="/exports/result.csv",
    )
    failed = make(state="failed", error="disk full", progress_percentage=30, progress_state="step 3")
    cancelled = make(state="cancelled", progress_percentage=50, user=alice)
    pending = make(queue="slow")
    running = make(state="started", progress_percentage=0, progress_state="", user=alice)
    publish(running, 42, "step 4")
    # A stale snapshot left behind: the ended job's DB values must win.
    publish(cancelled, 10, "stale")
    return {"finished": finished, "failed": failed, "cancelled": cancelled, "pending": pending, "running": running}


def run_in_thread(job_id: int) -> threading.Thread:
    def target():
        try:
            run_job(job_id)
        finally:
            connections.close_all()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def percentages(output: str) -> list[int]:
    return [int(m) for m in re.findall(r"(\d+)%", output)]


# ── list ───────────────────────────────────────────────────────────────────────


def test_list_table_shows_live_progress_for_running_and_db_values_for_ended(jobs, store_reads):
    out, _ = ferry("list")
    lines = {int(line.split()[0]): line for line in out.splitlines()[1:]}
    assert out.splitlines()[0].split() == ["ID", "TYPE", "STATE", "PROGRESS", "LABEL", "QUEUE", "OWNER", "CREATED"]
    assert set(lines) == {j.pk for j in jobs.values()}
    assert "42%" in lines[jobs["running"].pk] and "step 4" in lines[jobs["running"].pk]
    assert "50%" in lines[jobs["cancelled"].pk] and "stale" not in lines[jobs["cancelled"].pk]
    assert "100%" in lines[jobs["finished"].pk] and "alice" in lines[jobs["finished"].pk]
    assert "exports" in lines[jobs["finished"].pk]
    # Newest first.
    assert list(lines) == sorted(lines, reverse=True)
    # One batched store read for the page, of the jobs that have not ended.
    assert len(store_reads) == 1
    assert sorted(store_reads[0]) == sorted([jobs["pending"].pk, jobs["running"].pk])


def test_list_reads_the_store_once_however_many_jobs_run(jobs, store_reads):
    extra = [make(state="started") for _ in range(25)]
    for i, job in enumerate(extra):
        publish(job, i, f"row {i}")
    rows = json.loads(ferry("list", "--limit", 100, "--json")[0])
    assert len(store_reads) == 1
    by_id = {r["id"]: r for r in rows}
    assert [by_id[j.pk]["progress"] for j in extra] == list(range(25))
    assert by_id[extra[3].pk]["label"] == "row 3"


def test_list_json(jobs):
    rows = json.loads(ferry("list", "--json")[0])
    by_id = {r["id"]: r for r in rows}
    running = by_id[jobs["running"].pk]
    assert running == {
        "id": jobs["running"].pk,
        "type": "scripted",
        "state": "started",
        "progress": 42,
        "label": "step 4",
        "queue": "default",
        "owner": "alice",
        "created_at": running["created_at"],
    }
    assert by_id[jobs["pending"].pk]["owner"] is None
    assert by_id[jobs["cancelled"].pk]["progress"] == 50
    assert timezone.datetime.fromisoformat(running["created_at"]) == jobs["running"].created_at


def test_list_filters(jobs, alice):
    def ids(*args):
        return {r["id"] for r in json.loads(ferry("list", "--json", *args)[0])}

    assert ids("--state", "failed,cancelled") == {jobs["failed"].pk, jobs["cancelled"].pk}
    assert ids("--type", "export_table") == {jobs["finished"].pk}
    assert ids("--queue", "slow") == {jobs["pending"].pk}
    owned = {jobs["finished"].pk, jobs["cancelled"].pk, jobs["running"].pk}
    assert ids("--user", "alice") == owned
    assert ids("--user", alice.pk) == owned
    assert ids("--user", "alice", "--state", "started") == {jobs["running"].pk}
    assert len(ids("--limit", 2)) == 2
    assert ids("--type", "no_such_type") == set()
    assert ferry("list", "--type", "no_such_type")[0].strip() == "No jobs match."


def test_list_bad_values_are_usage_errors(jobs):
    assert "unknown state(s) bogus" in str(ferry_error("list", "--state", "started,bogus"))
    assert "--limit" in str(ferry_error("list", "--limit", 0))
    err = ferry_error("list", "--user", "nobody")
    assert err.returncode == 2
    assert "nobody" in str(err) and "--user" in str(err)


def test_list_survives_a_store_outage(jobs, monkeypatch):
    store = conf.get_progress_store()

    def down(job_ids):
        raise ConnectionError("store is down")

    monkeypatch.setattr(store, "read_many", down)
    out, err = ferry("list", "--json")
    rows = {r["id"]: r for r in json.loads(out)}
    assert rows[jobs["running"].pk]["progress"] == 0  # the database value
    assert "Live progress unavailable" in err and "store is down" in err


# ── show ───────────────────────────────────────────────────────────────────────


def test_show_includes_type_specific_fields(jobs):
    job = jobs["finished"]
    data = json.loads(ferry("show", job.pk, "--json")[0])
    assert data["id"] == job.pk
    assert data["model"] == "testapp.ExportJob"
    assert data["content_type"] == "testapp.exportjob"
    assert data["specific"] == {"table_id": 7, "output_path": "/exports/result.csv"}
    assert data["state"] == "finished" and data["progress_percentage"] == 100
    assert data["progress_source"] == "database"
    assert data["user"] == "alice" and data["queue"] == "exports"
    for field in ("error", "human_readable_error", "attempts", "priority", "result", "started_at", "finished_at"):
        assert field in data

    text = ferry("show", job.pk)[0]
    assert "testapp.ExportJob fields:" in text
    assert re.search(r"^table_id\s+7$", text, re.M)
    assert re.search(r"^output_path\s+/exports/result.csv$", text, re.M)
    assert re.search(r"^state\s+finished$", text, re.M)


def test_show_running_job_uses_the_store(jobs, store_reads):
    data = json.loads(ferry("show", jobs["running"].pk, "--json")[0])
    assert (data["progress_percentage"], data["progress_state"], data["progress_source"]) == (42, "step 4", "store")
    assert data["specific"]["steps"] == 10
    assert store_reads == [[jobs["running"].pk]]


def test_show_missing_job():
    err = ferry_error("show", 999999)
    assert err.returncode == 3
    assert str(err) == "Job 999999 does not exist. Run `manage.py ferry list` to see job ids."


# ── cancel ─────────────────────────────────────────────────────────────────────


def test_cancel_pending_running_ended_and_missing(jobs):
    out, _ = ferry("cancel", jobs["pending"].pk)
    assert out.strip() == f"Job {jobs['pending'].pk} is cancelled."
    assert Job.objects.get(pk=jobs["pending"].pk).state == "cancelled"

    ferry("cancel", jobs["running"].pk)
    assert Job.objects.get(pk=jobs["running"].pk).state == "cancelled"
    # The running job is told through the store, where its next flush reads the flag.
    assert conf.get_progress_store().read_many([jobs["running"].pk])[jobs["running"].pk].cancel_requested

    err = ferry_error("cancel", jobs["finished"].pk)
    assert err.returncode == 4
    assert "finished" in str(err) and "ferry show" in str(err)
    assert Job.objects.get(pk=jobs["finished"].pk).state == "finished"

    assert ferry_error("cancel", 999999).returncode == 3


# ── cleanup ────────────────────────────────────────────────────────────────────


def test_cleanup_dry_run_and_real(jobs):
    Job.objects.filter(pk__in=[jobs["finished"].pk, jobs["failed"].pk, jobs["pending"].pk]).update(
        created_at=timezone.now() - timedelta(days=10)
    )
    out, _ = ferry("cleanup", "--days", 5, "--dry-run")
    # The old pending job is not ended, so it is not counted.
    assert out.strip() == "Would delete 2 ended job(s) older than 5 day(s). Nothing was deleted."
    assert Job.objects.count() == 5

    out, _ = ferry("cleanup", "--days", 5)
    assert out.strip() == "Deleted 2 ended job(s) older than 5 day(s)."
    assert set(Job.objects.values_list("pk", flat=True)) == {
        jobs["cancelled"].pk,
        jobs["pending"].pk,
        jobs["running"].pk,
    }
    assert not ExportJob.objects.exists()


def test_cleanup_uses_the_setting_by_default(jobs):
    Job.objects.filter(pk=jobs["failed"].pk).update(created_at=timezone.now() - timedelta(days=3))
    with override_settings(TASK_FERRY={**FAST, "JOB_EXPIRY_DAYS": 2}):
        assert ferry("cleanup", "--dry-run")[0].startswith("Would delete 1 ended job(s) older than 2 day(s).")
    assert ferry("cleanup", "--dry-run")[0].startswith("Would delete 0 ended job(s) older than 7 day(s).")
    assert "must be 0 or more" in str(ferry_error("cleanup", "--days", -1))


# ── stats ──────────────────────────────────────────────────────────────────────


def test_stats(jobs):
    make(queue="slow")
    data = json.loads(ferry("stats", "--json")[0])
    assert data == {
        "total": 6,
        "by_state": {"pending": 2, "started": 1, "finished": 1, "failed": 1, "cancelled": 1, "retrying": 0},
        "by_type": {"export_table": 1, "scripted": 5},
        "by_queue": {"default": 3, "exports": 1, "slow": 2},
        "queue_depths": {"slow": 2},
    }
    text = ferry("stats")[0]
    assert text.startswith("Jobs: 6\n")
    assert re.search(r"By state:\n  pending\s+2\n  started\s+1\n", text)
    assert re.search(r"Pending per queue:\n  slow\s+2", text)


def test_stats_uses_a_constant_number_of_queries(jobs, django_assert_num_queries):
    with django_assert_num_queries(2):  # one GROUP BY for the counts, one for queue depths
        ferry("stats", "--json")


# ── plugins ────────────────────────────────────────────────────────────────────


def test_plugins_lists_core_plugins_with_version_and_marks_configured():
    version = metadata.version("task-ferry-core")
    data = json.loads(ferry("plugins", "--json")[0])
    executors = {p["name"]: p for p in data["executors"]}
    stores = {p["name"]: p for p in data["progress_stores"]}
    assert {"immediate"} <= set(executors) and {"cache", "database"} <= set(stores)
    for plugin in (executors["immediate"], stores["cache"], stores["database"]):
        assert (plugin["distribution"], plugin["version"]) == ("task-ferry-core", version)
    assert executors["immediate"]["configured"] is True
    assert stores["database"]["configured"] is True and stores["cache"]["configured"] is False
    assert stores["database"]["value"] == "task_ferry.stores.database:DatabaseProgressStore"

    text = ferry("plugins")[0]
    assert re.search(rf"\*\s+immediate\s+task-ferry-core\s+{re.escape(version)}", text)
    assert re.search(rf"\*\s+database\s+task-ferry-core\s+{re.escape(version)}", text)
    assert re.search(rf"^\s+cache\s+task-ferry-core\s+{re.escape(version)}", text, re.M)


def test_plugins_marks_dotted_and_legacy_settings():
    with override_settings(
        TASK_FERRY={
            "EXECUTOR": "task_ferry.executors.immediate.ImmediateExecutor",  # 0.1.1 path
            "PROGRESS_STORE": {"BACKEND": "task_ferry.stores.cache.CacheProgressStore", "OPTIONS": {}},
        }
    ):
        data = json.loads(ferry("plugins", "--json")[0])
    assert [p["name"] for p in data["executors"] if p["configured"]] == ["immediate"]
    assert [p["name"] for p in data["progress_stores"] if p["configured"]] == ["cache"]


def test_plugins_works_when_the_configured_plugin_is_missing():
    with override_settings(TASK_FERRY={"EXECUTOR": "celery_not_installed", "PROGRESS_STORE": "database"}):
        out, err = ferry("plugins")
    assert "immediate" in out
    assert 'TASK_FERRY["EXECUTOR"] names no installed plugin' in err and "celery_not_installed" in err


# ── watch ──────────────────────────────────────────────────────────────────────


@override_settings(TASK_FERRY=FAST)
def test_watch_follows_a_running_job_to_finished():
    job = make(steps=10, step_sleep=0.08)
    thread = run_in_thread(job.pk)
    out, _ = ferry("watch", job.pk, "--interval", 0.02)
    thread.join(10)
    lines = out.strip().splitlines()
    assert lines[-1] == f"Job {job.pk} finished."
    seen = percentages(out)
    assert seen == sorted(seen), seen
    assert any(0 < p < 100 for p in seen), seen
    assert len(set(seen)) >= 3, seen
    assert seen[-1] == 100
    # Not a TTY: one line per change, no carriage returns.
    assert "\r" not in out
    assert re.search(rf"^job {job.pk}: started \d+% step \d+$", out, re.M)


@override_settings(TASK_FERRY=FAST)
def test_watch_failed_job_exits_5():
    job = make(steps=4, step_sleep=0.05, fail_with="boom")
    thread = run_in_thread(job.pk)
    out = io.StringIO()
    with pytest.raises(CommandError) as excinfo:
        ferry("watch", job.pk, "--interval", 0.02, stdout=out)
    thread.join(10)
    assert excinfo.value.returncode == 5
    assert "boom" in str(excinfo.value) and f"ferry show {job.pk}" in str(excinfo.value)
    assert out.getvalue().strip().splitlines()[-1] == f"Job {job.pk} failed."


@override_settings(TASK_FERRY=FAST)
def test_watch_cancelled_job_exits_6():
    job = make(steps=100, step_sleep=0.05)
    thread = run_in_thread(job.pk)

    def cancel_soon():
        try:
            time.sleep(0.3)
            JobHandler.cancel(None, job.pk)
        finally:
            connections.close_all()

    canceller = threading.Thread(target=cancel_soon, daemon=True)
    canceller.start()
    out = io.StringIO()
    with pytest.raises(CommandError) as excinfo:
        ferry("watch", job.pk, "--interval", 0.02, stdout=out)
    canceller.join(10)
    thread.join(10)
    assert excinfo.value.returncode == 6
    assert out.getvalue().strip().splitlines()[-1] == f"Job {job.pk} cancelled."
    # The job really stopped early rather than running its 100 steps.
    assert Job.objects.get(pk=job.pk).progress_percentage < 100


def test_watch_ended_job_returns_at_once_and_missing_job_exits_3(jobs):
    started = time.monotonic()
    out, _ = ferry("watch", jobs["finished"].pk, "--interval", 5)
    assert time.monotonic() - started < 2
    assert out.strip().splitlines()[-1] == f"Job {jobs['finished'].pk} finished."
    assert ferry_error("watch", jobs["cancelled"].pk).returncode == 6
    assert ferry_error("watch", jobs["failed"].pk).returncode == 5
    assert ferry_error("watch", 999999).returncode == 3
    assert "--interval" in str(ferry_error("watch", jobs["finished"].pk, "--interval", 0))


class _TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@override_settings(TASK_FERRY=FAST)
def test_watch_redraws_one_line_on_a_tty():
    job = make(steps=8, step_sleep=0.06)
    thread = run_in_thread(job.pk)
    out, _ = ferry("watch", job.pk, "--interval", 0.02, stdout=_TTY())
    thread.join(10)
    bar_line, final = out.rstrip("\n").rsplit("\n", 1)
    assert final == f"Job {job.pk} finished."
    # Every redraw starts with a carriage return on the same line, ending with the full bar.
    assert "\n" not in bar_line
    redraws = bar_line.split("\r")[1:]
    assert len(redraws) >= 3
    assert redraws[-1].startswith("[" + "#" * 30 + "] 100%  finished")
    seen = percentages(bar_line)
    assert seen == sorted(seen) and any(0 < p < 100 for p in seen)


class SubscribingStore(DatabaseProgressStore):
    """The database store with a ``subscribe`` that follows its table: stands in for
    a store with a live channel (such as redis pub/sub) so the command's subscribe
    path runs against real writes from a real running job."""

    supports_subscribe = True
    subscriptions = 0

    def subscribe(self, job_id, timeout):
        type(self).subscriptions += 1
        last, seen_any = None, False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            snap = DatabaseProgressStore.read_many(self, [job_id]).get(job_id)
            if snap is None and seen_any:
                return  # cleared: the job ended
            if snap is not None and snap != last:
                seen_any, last = True, snap
                deadline = time.monotonic() + timeout
                yield snap
            time.sleep(0.01)


def test_watch_uses_subscribe_when_the_store_supports_it():
    settings = {**FAST, "PROGRESS_STORE": f"{__name__}.SubscribingStore"}
    with override_settings(TASK_FERRY=settings):
        store = conf.get_progress_store()
        assert isinstance(store, SubscribingStore)
        polls: list[list[int]] = []
        real = store.read_many
        store.read_many = lambda ids: polls.append(list(ids)) or real(ids)
        SubscribingStore.subscriptions = 0
        job = make(steps=10, step_sleep=0.08)
        thread = run_in_thread(job.pk)
        out, _ = ferry("watch", job.pk, "--interval", 0.5)
        thread.join(10)
    assert out.strip().splitlines()[-1] == f"Job {job.pk} finished."
    assert SubscribingStore.subscriptions >= 1
    seen = percentages(out)
    assert seen == sorted(seen) and len(set(seen)) >= 3, seen
    # Updates arrived through the subscription, not through polling every interval.
    assert len(polls) <= 4, polls


# ── a real process ─────────────────────────────────────────────────────────────


def _run(*args) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ferry_cli_settings",
        "FERRY_CLI_DB_NAME": str(connection.settings_dict["NAME"]),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(
        [sys.executable, "-m", "django", "ferry", *[str(a) for a in args]],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.integration
def test_exit_codes_from_a_real_process(jobs):
    listed = _run("list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {r["id"] for r in json.loads(listed.stdout)} == {j.pk for j in jobs.values()}

    missing = _run("show", 999999)
    assert missing.returncode == 3
    assert "Job 999999 does not exist. Run `manage.py ferry list` to see job ids." in missing.stderr

    ended = _run("cancel", jobs["finished"].pk)
    assert ended.returncode == 4, ended.stderr
    assert "already ended" in ended.stderr

    cancelled = _run("cancel", jobs["pending"].pk)
    assert cancelled.returncode == 0, cancelled.stderr
    assert Job.objects.get(pk=jobs["pending"].pk).state == "cancelled"

    bad = _run("list", "--state", "bogus")
    assert bad.returncode == 2
    assert "unknown state(s) bogus" in bad.stderr

    watched = _run("watch", jobs["failed"].pk)
    assert watched.returncode == 5
    assert watched.stdout.strip().splitlines()[-1] == f"Job {jobs['failed'].pk} failed."
