"""``task_ferry.live``: the live rule for one job, and for a page of ``values()`` rows."""

from __future__ import annotations

import time

import pytest
from django.contrib.contenttypes.models import ContentType

from task_ferry import live
from task_ferry.conf import get_progress_store
from task_ferry.live import LiveProgress, live_rows, live_values
from task_ferry.models import Job
from task_ferry.protocols import Snapshot

COLUMNS = ("id", "state", "progress_percentage", "progress_state", "error", "finished_at")


def snap(job_id: int, pct: int, label: str = "", state: str = "started", cancel: bool = False) -> Snapshot:
    return Snapshot(job_id, state, pct, label, time.time(), cancel)


def make(state: str, **fields) -> Job:
    return Job.objects.create(type="plain", state=state, content_type=ContentType.objects.get_for_model(Job), **fields)


def test_an_ended_job_shows_its_row_whatever_the_store_holds():
    assert live_values("finished", 100, "done", snap(1, 40, "stale")) == LiveProgress(
        "finished", 100, "done", "database"
    )


def test_a_running_job_shows_its_snapshot_with_the_cancel_flag():
    got = live_values("started", 0, "", snap(1, 40, "step 4", cancel=True))
    assert got == LiveProgress("started", 40, "step 4", "store", True)


def test_a_snapshot_without_a_label_keeps_the_rows_label_and_no_snapshot_means_the_row():
    assert live_values("started", 10, "warming up", snap(1, 20)).label == "warming up"
    assert live_values("pending", 0, "", None) == LiveProgress("pending", 0, "", "database")


@pytest.fixture
def store(transactional_db):
    store = get_progress_store()
    yield store
    store.close()


def test_a_page_reads_the_store_once_for_its_running_rows_only(store, store_reads):
    running = [make("started") for _ in range(3)]
    ended = [make("finished", progress_percentage=100) for _ in range(3)]
    for n, job in enumerate(running):
        store.write(snap(job.pk, 10 * (n + 1), f"step {n}"))
    store.write(snap(ended[0].pk, 5, "stale"))
    rows = list(Job._base_manager.order_by("pk").values(*COLUMNS))

    out = live_rows(rows)

    assert store_reads == [[job.pk for job in running]]
    assert [row for row, _ in out] == rows
    assert [(v.state, v.percentage, v.label, v.source) for _, v in out] == [
        ("started", 10, "step 0", "store"),
        ("started", 20, "step 1", "store"),
        ("started", 30, "step 2", "store"),
        *[("finished", 100, "", "database")] * 3,
    ]


def test_a_page_of_ended_rows_costs_no_store_read(store, store_reads):
    make("failed")
    make("cancelled")
    out = live_rows(list(Job._base_manager.values(*COLUMNS)))
    assert store_reads == [] and {v.source for _, v in out} == {"database"}


def test_a_row_whose_job_ended_between_the_two_reads_is_re_read_whole(store, django_assert_num_queries):
    job = make("started")
    rows = list(Job._base_manager.filter(pk=job.pk).values(*COLUMNS))
    # The job fails meanwhile: the runner records the end, then clears the store.
    Job._base_manager.filter(pk=job.pk).update(state="failed", error="disk full", progress_percentage=30)
    store.clear(job.pk)

    with django_assert_num_queries(1):  # the re-read (the store has its own connection)
        ((row, values),) = live_rows(rows, columns=COLUMNS)

    assert (row["state"], row["error"], row["progress_percentage"]) == ("failed", "disk full", 30)
    assert row["finished_at"] is None and set(row) == set(COLUMNS)
    assert values == LiveProgress("failed", 30, "", "database")


def test_a_store_outage_gives_database_values_through_the_callback(store, monkeypatch):
    job = make("started", progress_percentage=12, progress_state="from the row")

    def down(ids):
        raise ConnectionError("store down")

    monkeypatch.setattr(store, "read_many", down)
    seen = []
    rows = list(Job._base_manager.filter(pk=job.pk).values(*COLUMNS))

    ((_, values),) = live_rows(rows, on_store_error=seen.append)

    assert values == LiveProgress("started", 12, "from the row", "database")
    assert [str(exc) for exc in seen] == ["store down"]
    with pytest.raises(ConnectionError):
        live_rows(rows)
    live.log_store_error(ConnectionError("store down"))  # logs once per outage; never raises
