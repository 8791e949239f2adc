"""Per-job logs.

1. ``job.log()`` inside ``run`` writes numbered lines (1, 2, 3, ...) with their
   level; outside a run, lines are numbered after the job's last one; two
   writers that collide on a number both keep their line.
2. ``capture_logs`` stores the ``logging`` records of the run's own thread only,
   in batches (not one INSERT per record); without it nothing is captured.
3. Reads: ``JobHandler.get_logs`` by cursor and by page, in one query.
4. Shown in ``ferry show`` / ``ferry watch`` and the admin; deleted with the job
   by cleanup (with its attempts).
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from ferry_core_testproject.testapp.models import ScriptedJob

from task_ferry.handler import JobHandler
from task_ferry.logs import RunLog, level_name
from task_ferry.models import Job, JobAttempt, JobLog
from task_ferry.registry import JobType, job_type_registry
from task_ferry.states import JOB_FINISHED

app_logger = logging.getLogger("ferry_tests.app")


class Chatty(JobType):
    """Logs ``steps`` lines with ``job.log`` at rotating levels."""

    type = "test_chatty"
    model_class = ScriptedJob
    max_count = 100

    def run(self, job, progress):
        for i in range(job.steps):
            job.log(f"line {i + 1}", level=("info", "warning", "error", logging.DEBUG)[i % 4])
            progress.increment(100 / job.steps)


class Captured(JobType):
    """Emits ``steps`` logging records (and one job.log line first); a thread it
    starts emits records too, which must not be captured."""

    type = "test_captured"
    model_class = ScriptedJob
    max_count = 100
    capture_logs = True

    def run(self, job, progress):
        job.log("started")
        other = threading.Thread(target=lambda: [app_logger.warning("from another thread") for _ in range(5)])
        other.start()
        for i in range(job.steps):
            app_logger.warning("record %d", i + 1)
            if i % 50 == 0:
                progress.increment(1)
        other.join()
        app_logger.error("failing", exc_info=ValueError("details"))


class NotCaptured(Captured):
    type = "test_not_captured"
    capture_logs = False


@pytest.fixture(autouse=True)
def job_types(settings):
    settings.TASK_FERRY = {"EXECUTOR": "immediate", "PROGRESS_STORE": "database", "PROGRESS_FLUSH_INTERVAL": 0.01}
    types = [Chatty(), Captured(), NotCaptured()]
    for t in types:
        job_type_registry.register(t)
    yield
    for t in types:
        job_type_registry.unregister(t.type)


def _lines(job) -> list[tuple]:
    return list(JobLog.objects.filter(job_id=job.pk).order_by("seq").values_list("seq", "level", "message"))


# ── 1. Writing ─────────────────────────────────────────────────────────────────


def test_job_log_numbers_lines_in_order_with_their_levels(db):
    job = JobHandler.create_and_start(None, "test_chatty", steps=6)
    assert _lines(job) == [
        (1, "info", "line 1"),
        (2, "warning", "line 2"),
        (3, "error", "line 3"),
        (4, "debug", "line 4"),
        (5, "info", "line 5"),
        (6, "warning", "line 6"),
    ]
    # Outside a run (a view, a shell): numbered after the last line.
    job.log("note from an operator", level="WARNING")
    assert _lines(job)[-1] == (7, "warning", "note from an operator")


def test_a_second_run_continues_the_numbering(db):
    job = JobHandler.create_and_start(None, "test_chatty", steps=2)
    Job.objects.filter(pk=job.pk).update(state="failed")  # so it can be retried
    JobHandler.retry(job.pk)
    assert [seq for seq, _, _ in _lines(job)] == [1, 2, 3, 4]


def test_colliding_writers_both_keep_their_lines(transactional_db):
    job = JobHandler.create_and_start(None, "test_chatty", steps=1)
    a, b = RunLog(job.pk), RunLog(job.pk)
    a.add("info", "from a")
    a.flush()  # a believes 2 is next
    b.add("info", "from b")
    b.flush()  # b read the max after a's write: 3
    a.add("info", "from a again")
    a.flush()  # a's counter says 3: collides, re-reads, writes 4
    assert _lines(job)[1:] == [(2, "info", "from a"), (3, "info", "from b"), (4, "info", "from a again")]


def test_levels():
    assert [level_name(x) for x in ("INFO", "warn", logging.ERROR, 25, 5, "critical")] == [
        "info",
        "warning",
        "error",
        "info",
        "debug",
        "critical",
    ]
    with pytest.raises(ValueError, match="unknown log level"):
        level_name("loud")


# ── 2. Capturing logging records ───────────────────────────────────────────────


def test_capture_keeps_the_runs_own_thread_records_in_batches(transactional_db):
    job = JobHandler.create_and_start(None, "test_captured", steps=1)  # warm up: connections, first numbering
    JobLog.objects.all().delete()
    job = ScriptedJob.objects.create(
        content_type_id=job.content_type_id, type="test_captured", steps=250, state="pending"
    )
    from task_ferry.runner import run_job

    with CaptureQueriesContext(connection) as ctx:
        assert run_job(job.pk).outcome == JOB_FINISHED
    lines = list(JobLog.objects.filter(job_id=job.pk).order_by("seq"))
    messages = [line.message for line in lines]
    assert messages[0] == "started" and lines[0].logger == ""
    assert messages[1:251] == [f"record {i}" for i in range(1, 251)]
    assert all(line.logger == "ferry_tests.app" and line.level == "warning" for line in lines[1:251])
    assert "from another thread" not in messages
    assert lines[-1].level == "error" and "ValueError: details" in lines[-1].message
    assert [line.seq for line in lines] == list(range(1, len(lines) + 1))
    inserts = [q for q in ctx.captured_queries if q["sql"].startswith('INSERT INTO "task_ferry_joblog"')]
    # 252 lines: job.log writes at once; the 251 records go in batches of at most 100 (or at flushes).
    assert 3 <= len(inserts) <= 12, len(inserts)


def test_without_capture_logs_records_are_not_stored(db):
    job = JobHandler.create_and_start(None, "test_not_captured", steps=10)
    assert [m for _, _, m in _lines(job)] == ["started"]


# ── 3. Reading ─────────────────────────────────────────────────────────────────


def test_get_logs_pages_by_cursor_and_by_number(db, django_assert_num_queries):
    job = JobHandler.create_and_start(None, "test_chatty", steps=25)
    with django_assert_num_queries(1):
        first = JobHandler.get_logs(job, page_size=10)
    assert [line.seq for line in first.lines] == list(range(1, 11))
    assert first.has_more and first.next_after == 10

    with django_assert_num_queries(1):
        after = JobHandler.get_logs(job.pk, after=first.next_after, page_size=10)
    assert [line.seq for line in after.lines] == list(range(11, 21))
    last = JobHandler.get_logs(job.pk, after=after.next_after, page_size=10)
    assert [line.seq for line in last.lines] == list(range(21, 26))
    assert not last.has_more and last.next_after == 25
    empty = JobHandler.get_logs(job.pk, after=25)
    assert (empty.lines, empty.has_more, empty.next_after) == ([], False, 25)

    assert [line.seq for line in JobHandler.get_logs(job, page=3, page_size=10).lines] == [21, 22, 23, 24, 25]
    assert JobHandler.get_logs(job, page=4, page_size=10).lines == []
    for bad in ({"page": 0}, {"after": -1}, {"page_size": 0}, {"page": 1, "after": 3}, {"page_size": 5000}):
        with pytest.raises(ValueError):
            JobHandler.get_logs(job, **bad)


# ── 4. Where lines are shown, and cleanup ──────────────────────────────────────


def test_ferry_show_prints_attempts_and_the_last_lines(db):
    job = JobHandler.create_and_start(None, "test_chatty", steps=30)
    out = io.StringIO()
    call_command("ferry", "show", str(job.pk), "--logs", "3", stdout=out)
    text = out.getvalue()
    assert "Attempts:" in text and "finished" in text
    assert "Log (last 3 line(s)):" in text
    assert "[debug] line 28" in text and "[warning] line 30" in text and "line 27" not in text

    out = io.StringIO()
    call_command("ferry", "show", str(job.pk), "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert [line["seq"] for line in data["log_tail"]] == list(range(11, 31))
    assert data["attempt_history"][0]["outcome"] == "finished"


def test_ferry_watch_streams_new_lines(transactional_db):
    # Created pending and not dispatched: the thread below runs it.
    job = ScriptedJob.objects.create(content_type_id=_content_type_id(), type="test_chatty", steps=40)
    job.log("before the watch")

    def work():
        from task_ferry.runner import run_job

        try:
            time.sleep(0.3)
            for i in range(5):
                job.log(f"written while watched {i}")
                time.sleep(0.05)
            run_job(job.pk)
        finally:
            connections.close_all()

    thread = threading.Thread(target=work)
    thread.start()
    out = io.StringIO()
    call_command("ferry", "watch", str(job.pk), "--interval", "0.05", stdout=out)
    thread.join(10)
    text = out.getvalue()
    assert "[info] before the watch" in text
    for i in range(5):
        assert f"written while watched {i}" in text
    assert "[debug] line 40" in text
    assert text.strip().splitlines()[-1] == f"Job {job.pk} finished."
    # Each line once, in order.
    seqs = [int(line.split()[0]) for line in text.splitlines() if line.startswith("  ")]
    assert seqs == sorted(set(seqs)) == list(range(1, 47))


def _content_type_id() -> int:
    from django.contrib.contenttypes.models import ContentType

    return ContentType.objects.get_for_model(ScriptedJob, for_concrete_model=False).pk


def test_admin_shows_attempts_and_the_log_tail_and_links_to_all_lines(admin_client):
    job = JobHandler.create_and_start(None, "test_chatty", steps=30)
    html = admin_client.get(f"/admin/task_ferry/job/{job.pk}/change/").content.decode()
    assert "line 30" in html and "line 11" in html and "line 10<" not in html  # the last 20
    assert "<th>outcome</th>" in html and "<td>finished</td>" in html
    link = f"/admin/task_ferry/joblog/?job__id__exact={job.pk}"
    assert link in html
    listing = admin_client.get(link)
    assert listing.status_code == 200
    assert "line 1<" in listing.content.decode() and "line 30" in listing.content.decode()
    assert admin_client.get("/admin/task_ferry/joblog/add/").status_code == 403
    assert "line 7<" in admin_client.get("/admin/task_ferry/joblog/?q=line+7").content.decode()
    assert admin_client.get(f"/admin/task_ferry/joblog/?q={job.pk}").status_code == 200


def test_cleanup_deletes_logs_and_attempts_with_the_job(db):
    old = JobHandler.create_and_start(None, "test_chatty", steps=5)
    kept = JobHandler.create_and_start(None, "test_chatty", steps=5)
    Job.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=30))
    assert JobHandler.cleanup_old_jobs(days=7) == 1
    assert not JobLog.objects.filter(job_id=old.pk).exists()
    assert not JobAttempt.objects.filter(job_id=old.pk).exists()
    assert JobLog.objects.filter(job_id=kept.pk).count() == 5
    assert JobAttempt.objects.filter(job_id=kept.pk).count() == 1
