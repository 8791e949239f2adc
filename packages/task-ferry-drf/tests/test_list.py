"""``GET /``: what the list shows, its filters, its two paginations and the live rule."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import API, FIELDS_011, make_job, snapshot
from django.db import connection
from django.test.utils import CaptureQueriesContext
from ferry_drf_testproject.drfapp import job_types
from ferry_drf_testproject.drfapp.models import ExportJob
from rest_framework.test import APIClient

from task_ferry.conf import get_progress_store
from task_ferry.models import Job
from task_ferry.states import ALL_STATES

pytestmark = pytest.mark.django_db


def ids(response) -> list[int]:
    return [job["id"] for job in response.json()]


def test_lists_only_the_callers_jobs_newest_first_in_a_superset_of_011s_json(alice, bob, client_for):
    mine = [make_job(alice, "step"), make_job(alice, "export_table", "finished"), make_job(alice, "plain", "failed")]
    make_job(bob, "step")
    make_job(None, "step")  # a system job

    response = client_for(alice).get(API)

    assert response.status_code == 200
    assert ids(response) == [job.pk for job in reversed(mine)]
    for item in response.json():
        assert set(FIELDS_011) <= set(item)
    first = response.json()[0]
    assert first["type"] == "plain" and first["state"] == "failed" and first["user"] == alice.pk
    assert response["X-Total-Count"] == "3"


def test_state_filter_takes_a_comma_list_and_repeated_parameters(alice, client_for):
    jobs = {state: make_job(alice, "step", state) for state in ALL_STATES}
    client = client_for(alice)

    assert set(ids(client.get(API, {"state": "pending,failed"}))) == {jobs["pending"].pk, jobs["failed"].pk}
    assert set(ids(client.get(f"{API}?state=started&state=cancelled"))) == {jobs["started"].pk, jobs["cancelled"].pk}
    assert len(ids(client.get(API, {"state": ""}))) == len(ALL_STATES)  # an empty filter filters nothing


def test_type_filter_includes_rows_written_by_011(alice, client_for):
    export = make_job(alice, "export_table")
    legacy = make_job(alice, "", model=ExportJob)  # 0.1.1 rows have no type column value
    make_job(alice, "step")
    client = client_for(alice)

    response = client.get(API, {"type": "export_table"})

    assert set(ids(response)) == {export.pk, legacy.pk}
    assert {job["type"] for job in response.json()} == {"export_table"}
    assert len(ids(client.get(API, {"type": "export_table,step"}))) == 3


def test_created_after_and_before(alice, client_for):
    jobs = [make_job(alice) for _ in range(4)]
    # Jobs are a second apart: [1] and [2] are in [created_at of 1, created_at of 3).
    params = {"created_after": jobs[1].created_at.isoformat(), "created_before": jobs[3].created_at.isoformat()}

    response = client_for(alice).get(API, params)

    assert ids(response) == [jobs[2].pk, jobs[1].pk]
    # A date alone means midnight; the jobs were all created today or yesterday.
    day = (jobs[0].created_at + timedelta(days=1)).date().isoformat()
    assert ids(client_for(alice).get(API, {"created_before": day})) == [j.pk for j in reversed(jobs)]


@pytest.mark.parametrize(
    "params,field",
    [
        ({"state": "running"}, "state"),
        ({"state": "pending,nope"}, "state"),
        ({"type": "no_such_type"}, "type"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_after": "2026-13-01"}, "created_after"),
        ({"created_before": "0001-01-01T00:00:00+14:00"}, "created_before"),  # overflows when normalised
        ({"created_before": "9999-12-31T23:59:59-14:00"}, "created_before"),
        ({"ordering": "state"}, "ordering"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "1e3"}, "limit"),
        ({"offset": "-5"}, "offset"),
        ({"offset": str(2**80)}, "offset"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "eyJvIjoiaWQifQ"}, "cursor"),  # valid base64 JSON, missing keys
        ({"cursor": "", "offset": "3"}, "offset"),
        ({"user": "²"}, "user"),  # a digit to str.isdigit(), not to int()
        ({"user": str(2**70)}, "user"),
        ({"state": "pend\x00ing"}, "state"),
    ],
)
def test_a_bad_query_parameter_is_a_400_naming_it(alice, client_for, params, field):
    response = client_for(alice).get(API, params)

    assert response.status_code == 400, response.content
    assert field in response.json()


def test_unknown_parameters_are_ignored(alice, client_for):
    job = make_job(alice)
    assert ids(client_for(alice).get(API, {"_": "1712345", "page": "x"})) == [job.pk]


# ── Offset pagination ─────────────────────────────────────────────────────────


def test_offset_pages_have_a_total_count_and_links(alice, client_for):
    jobs = [make_job(alice) for _ in range(7)]
    newest_first = [j.pk for j in reversed(jobs)]
    client = client_for(alice)

    first = client.get(API, {"limit": 3})
    middle = client.get(API, {"limit": 3, "offset": 3})
    last = client.get(API, {"limit": 3, "offset": 6})

    assert [ids(first), ids(middle), ids(last)] == [newest_first[:3], newest_first[3:6], newest_first[6:]]
    assert first["X-Total-Count"] == middle["X-Total-Count"] == last["X-Total-Count"] == "7"
    assert 'offset=3>; rel="next"' in first["Link"] and "prev" not in first["Link"]
    assert 'offset=6>; rel="next"' in middle["Link"] and 'offset=0>; rel="prev"' in middle["Link"]
    assert "next" not in last["Link"]
    beyond = client.get(API, {"limit": 3, "offset": 100})
    assert beyond.json() == [] and beyond["X-Total-Count"] == "7"
    # Following the link gives the next page.
    next_url = first["Link"].split(">")[0].lstrip("<")
    assert ids(client.get(next_url)) == newest_first[3:6]


def test_page_size_defaults_and_is_capped(alice, client_for, settings):
    settings.TASK_FERRY_DRF = {**settings.TASK_FERRY_DRF, "PAGE_SIZE": 2, "MAX_PAGE_SIZE": 4}
    for _ in range(6):
        make_job(alice)
    client = client_for(alice)

    assert len(ids(client.get(API))) == 2
    assert len(ids(client.get(API, {"limit": 1000}))) == 4
    assert len(ids(client.get(API, {"limit": str(2**70)}))) == 4
    empty = client.get(API, {"limit": 0})
    assert empty.json() == [] and empty["X-Total-Count"] == "6"


def test_011_defaults_page_size_50_capped_at_200(alice, client_for):
    for _ in range(210):
        make_job(alice)
    client = client_for(alice)

    assert len(ids(client.get(API))) == 50
    assert len(ids(client.get(API, {"limit": 500}))) == 200


# ── Cursor pagination ─────────────────────────────────────────────────────────


def _walk(client, params) -> tuple[list[int], int]:
    """Follow ``rel="next"`` links from the first cursor page; return the ids and the page count."""
    response = client.get(API, {**params, "cursor": ""})
    seen, pages = ids(response), 1
    while "Link" in response:
        assert "X-Total-Count" not in response
        url = response["Link"].split(">")[0].lstrip("<")
        assert response["X-Next-Cursor"] in url
        response = client.get(url)
        assert response.status_code == 200, response.content
        seen += ids(response)
        pages += 1
    return seen, pages


@pytest.mark.parametrize("ordering", ["-created_at", "created_at", "-updated_at", "updated_at", "-id", "id"])
def test_cursor_pages_cover_every_job_once_in_order_even_with_equal_timestamps(alice, client_for, ordering):
    jobs = [make_job(alice) for _ in range(11)]
    # Four jobs share one creation time and three an update time: ties are broken by id.
    same = jobs[2].created_at
    for job in jobs[3:6]:
        type(job)._base_manager.filter(pk=job.pk).update(created_at=same)
    type(jobs[0])._base_manager.filter(pk__in=[j.pk for j in jobs[7:10]]).update(updated_at=jobs[7].updated_at)
    client = client_for(alice)
    expected = ids(client.get(API, {"ordering": ordering, "limit": 200}))

    seen, pages = _walk(client, {"ordering": ordering, "limit": 3})

    assert seen == expected and len(seen) == 11
    assert pages == 4


def test_cursor_keeps_filters_from_the_link(alice, client_for):
    failed = [make_job(alice, state="failed") for _ in range(5)]
    make_job(alice, state="finished")

    seen, _ = _walk(client_for(alice), {"state": "failed", "limit": 2})

    assert sorted(seen) == sorted(j.pk for j in failed)


def test_cursor_made_for_another_ordering_is_rejected(alice, client_for):
    for _ in range(3):
        make_job(alice)
    client = client_for(alice)
    token = client.get(API, {"cursor": "", "limit": 1, "ordering": "id"})["X-Next-Cursor"]

    assert client.get(API, {"cursor": token, "ordering": "-id"}).status_code == 400
    assert client.get(API, {"cursor": token}).status_code == 200  # the cursor carries its ordering


# ── Who sees what ─────────────────────────────────────────────────────────────


def test_staff_list_their_own_jobs_by_default_and_everyones_on_request(alice, bob, staff, client_for):
    a, b, s = make_job(alice), make_job(bob), make_job(staff)
    client = client_for(staff)

    assert ids(client.get(API)) == [s.pk]
    assert ids(client.get(API, {"user": "all"})) == [s.pk, b.pk, a.pk]
    assert ids(client.get(API, {"user": str(bob.pk)})) == [b.pk]


def test_other_users_lists_are_staff_only(alice, bob, client_for):
    mine = make_job(alice)
    make_job(bob)
    client = client_for(alice)

    assert client.get(API, {"user": "all"}).status_code == 403
    assert client.get(API, {"user": str(bob.pk)}).status_code == 403
    assert ids(client.get(API, {"user": str(alice.pk)})) == [mine.pk]


def test_a_type_whose_hook_denies_view_is_left_out(alice, client_for, guard_policy):
    step = make_job(alice, "step")
    make_job(alice, "guarded")
    guard_policy["view"] = False

    response = client_for(alice).get(API)

    assert ids(response) == [step.pk]
    assert response["X-Total-Count"] == "1"
    assert ("alice", "view", None) in job_types.GUARD_CALLS


def test_anonymous_requests_are_refused(db):
    assert APIClient().get(API).status_code in (401, 403)


# ── Live values ──────────────────────────────────────────────────────────────


def test_running_jobs_show_the_store_and_ended_jobs_the_database(alice, client_for):
    store = get_progress_store()
    running = make_job(alice, state="started", progress_percentage=0)
    claimed = make_job(alice, state="pending")  # claimed by a worker: the store knows before the row is read
    finished = make_job(alice, state="finished", progress_state="all done")
    waiting = make_job(alice, state="pending")
    store.write(snapshot(running.pk, 42, "row 42"))
    store.write(snapshot(claimed.pk, 5, "warming up"))
    store.write(snapshot(finished.pk, 60, "stale"))  # left behind by a killed worker

    jobs = {job["id"]: job for job in client_for(alice).get(API).json()}

    def live(job):
        return (job["state"], job["progress_percentage"], job["progress_state"])

    assert live(jobs[running.pk]) == ("started", 42, "row 42")
    assert live(jobs[claimed.pk]) == ("started", 5, "warming up")
    assert live(jobs[finished.pk]) == ("finished", 100, "all done")
    assert live(jobs[waiting.pk]) == ("pending", 0, "")


def test_a_job_that_ends_between_the_page_and_the_store_read_shows_its_end(alice, client_for, monkeypatch):
    """The page is read first: a running job whose runner records its end (and clears the store)
    before the store is read must not show its old row (started, 0 %) -- progress would go backwards."""
    job = make_job(alice, state="started", progress_percentage=0)
    other = make_job(alice, state="started", progress_percentage=0)
    store = get_progress_store()
    store.write(snapshot(other.pk, 50, "half"))
    read_many = type(store).read_many

    def end_then_read(self, ids):
        Job._base_manager.filter(pk=job.pk).update(state="finished", progress_percentage=100, progress_state="done")
        store.clear(job.pk)
        return read_many(self, ids)

    client = client_for(alice)
    monkeypatch.setattr(type(store), "read_many", end_then_read)

    with CaptureQueriesContext(connection) as queries:
        jobs = {j["id"]: j for j in client.get(API).json()}

    assert (jobs[job.pk]["state"], jobs[job.pk]["progress_percentage"]) == ("finished", 100)
    assert (jobs[other.pk]["state"], jobs[other.pk]["progress_percentage"]) == ("started", 50)
    # Session and user, the page, the job's end (the test's own UPDATE), and the one re-read.
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["SELECT", "SELECT", "SELECT", "UPDATE", "SELECT"]


def test_cancel_requested_is_shown_until_the_job_stops(alice, client_for):
    store = get_progress_store()
    running = make_job(alice, state="started")
    store.write(snapshot(running.pk, 30))
    store.request_cancel(running.pk)

    (job,) = client_for(alice).get(API).json()

    assert job["cancel_requested"] is True and job["progress_percentage"] == 30


def test_an_unreachable_store_degrades_to_database_values(alice, client_for, settings):
    running = make_job(alice, state="started", progress_percentage=12, progress_state="from the row")
    settings.TASK_FERRY = {
        **settings.TASK_FERRY,
        # Nothing listens on port 1: every store call fails fast.
        "PROGRESS_STORE": {
            "BACKEND": "redis",
            "OPTIONS": {"URL": "redis://127.0.0.1:1/4", "SOCKET_CONNECT_TIMEOUT": 0.2},
        },
    }

    response = client_for(alice).get(API)

    assert response.status_code == 200
    assert [(j["id"], j["progress_percentage"], j["progress_state"]) for j in response.json()] == [
        (running.pk, 12, "from the row")
    ]


@pytest.mark.parametrize("time_zone", ["UTC", "America/Chicago", "Asia/Kolkata", "Europe/London"])
def test_timestamps_are_rendered_exactly_as_drf_renders_them(alice, client_for, settings, time_zone):
    """On PostgreSQL the list has the database write its timestamps as text (Django's loader
    would parse each one in Python); the text must be what DRF's DateTimeField renders, in
    the current time zone, whatever the fraction (none, trailing zeros, one microsecond)."""
    from datetime import UTC, datetime

    from rest_framework.fields import DateTimeField

    settings.TIME_ZONE = time_zone
    stamps = [
        datetime(2026, 3, 29, 0, 59, 59, 0, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 0, 0, 120000, tzinfo=UTC),
        datetime(2026, 10, 25, 0, 30, 0, 1, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ]
    for n, stamp in enumerate(stamps):
        job = make_job(alice, "step", "finished" if n % 2 else "started")
        Job._base_manager.filter(pk=job.pk).update(
            created_at=stamp, updated_at=stamp, started_at=stamp, finished_at=stamp if n % 2 else None
        )

    listed = {job["id"]: job for job in client_for(alice).get(API, {"limit": 200}).json()}

    drf = DateTimeField()
    for job in Job._base_manager.filter(pk__in=listed):
        for name in ("created_at", "updated_at", "started_at", "finished_at"):
            value = getattr(job, name)
            assert listed[job.pk][name] == (None if value is None else drf.to_representation(value)), (name, value)
