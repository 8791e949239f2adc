"""Cost per request: database queries and progress-store round trips.

Round trips are counted where they happen, in redis-py's connection (one
``send_packed_command`` per request/response exchange; a pipeline is one).
Authentication is forced, so the counts are the endpoint's own (session
authentication adds two queries: the session and the user).
"""

from __future__ import annotations

import itertools

import pytest
from conftest import API, make_job, snapshot
from django.db import connection
from django.test.utils import CaptureQueriesContext
from ferry_drf_testproject.drfapp.models import ExportJob
from redis.connection import Connection
from rest_framework.test import APIClient

from task_ferry.conf import get_progress_store

pytestmark = pytest.mark.django_db


@pytest.fixture
def round_trips(monkeypatch):
    """A list that gets one entry per Redis round trip made by this process."""
    trips: list = []
    original = Connection.send_packed_command

    def counted(self, command, check_health=True):
        trips.append(command)
        return original(self, command, check_health)

    monkeypatch.setattr(Connection, "send_packed_command", counted)
    return trips


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _fill(user, count: int) -> None:
    """``count`` jobs over every type (and 0.1.1 rows), a quarter of them running with a snapshot."""
    store = get_progress_store()
    kinds = itertools.cycle(
        [("step", {}), ("export_table", {}), ("plain", {}), ("guarded", {}), ("", {"model": ExportJob})]
    )
    for n, (kind, extra) in zip(range(count), kinds):
        state = "started" if n % 4 == 0 else "finished"
        job = make_job(user, kind, state, **extra)
        if state == "started":
            store.write(snapshot(job.pk, n % 100, f"step {n}"))


@pytest.mark.parametrize("mode", [{}, {"cursor": ""}], ids=["offset", "cursor"])
def test_a_list_page_costs_the_same_whatever_its_size_and_types(alice, round_trips, mode):
    _fill(alice, 220)
    client = _client(alice)
    costs = {}
    for limit in (1, 20, 200):
        client.get(API, {"limit": limit, **mode})  # warm caches (content types, ...) once
        round_trips.clear()
        with CaptureQueriesContext(connection) as queries:
            response = client.get(API, {"limit": limit, **mode})
        assert response.status_code == 200 and len(response.json()) == limit
        running = any(job["state"] == "started" for job in response.json())
        costs[limit] = (len(queries), len(round_trips), running)

    # offset: COUNT + page; cursor: the page only. One round trip if the page has a running job.
    for n_queries, n_trips, running in costs.values():
        assert n_queries == (2 if not mode else 1), costs
        assert n_trips == (1 if running else 0), costs
    assert costs[200][1] == 1
    # And the page shows live progress of running jobs from that one round trip.
    page = client.get(API, {"limit": 200, **mode}).json()
    assert any(job["state"] == "started" and job["progress_state"].startswith("step ") for job in page)
    assert {job["type"] for job in page} == {"step", "export_table", "plain", "guarded"}


def test_a_page_of_ended_jobs_costs_no_store_round_trip(alice, round_trips):
    """Ended jobs show their row whatever the store holds, so the store is not asked about them."""
    for state in ("finished", "failed", "cancelled") * 10:
        make_job(alice, "step", state)
    client = _client(alice)
    client.get(API)
    round_trips.clear()

    response = client.get(API, {"limit": 200})

    assert len(response.json()) == 30
    assert round_trips == []


def test_a_list_page_stays_within_three_queries_with_a_type_filter_and_a_hook(alice, round_trips, guard_policy):
    _fill(alice, 50)
    guard_policy["view"] = False  # the list then excludes a type: still part of the one page query
    client = _client(alice)
    client.get(API)
    round_trips.clear()

    with CaptureQueriesContext(connection) as queries:
        response = client.get(API, {"type": "export_table,step", "state": "started,finished", "limit": 200})

    assert response.status_code == 200 and response.json()
    assert len(queries) <= 3
    assert len(round_trips) == 1


@pytest.mark.parametrize("kind", ["export_table", "step", "plain", "guarded", "legacy"])
def test_a_detail_costs_one_query_and_one_round_trip_whatever_the_type(alice, round_trips, kind):
    job = make_job(alice, "", "started", model=ExportJob) if kind == "legacy" else make_job(alice, kind, "started")
    get_progress_store().write(snapshot(job.pk, 40))
    client = _client(alice)
    client.get(f"{API}{job.pk}/")
    round_trips.clear()

    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"{API}{job.pk}/")

    assert response.status_code == 200 and response.json()["progress_percentage"] == 40
    # The row, its content type and its type's own fields (every subclass table is joined).
    assert len(queries) == 1
    assert len(round_trips) == 1
    expected = {
        "export_table": {"table_id", "output_path"},
        "step": {"steps", "step_sleep", "fail_with"},
        "guarded": {"steps", "step_sleep", "fail_with"},
        "plain": set(),
        "legacy": {"table_id", "output_path"},
    }
    assert set(response.json()["values"]) == expected[kind]


@pytest.mark.parametrize("jobs,expected", [(30, 3), (60, 4)], ids=["one-page", "more-pages"])
def test_session_authentication_adds_the_session_and_user_lookups(alice, round_trips, client_for, jobs, expected):
    """Session, user, the page (one row more than asked, to see whether more follow), and a COUNT
    only when they do: a list that fits in one page (default 50) knows its total without one."""
    _fill(alice, jobs)
    client = client_for(alice)
    client.get(API)

    with CaptureQueriesContext(connection) as queries:
        response = client.get(API)

    assert response["X-Total-Count"] == str(jobs)
    assert len(queries) == expected, [q["sql"][:80] for q in queries.captured_queries]


@pytest.mark.parametrize("lines", [0, 3, 250])
def test_a_logs_page_costs_two_queries_and_no_round_trip_whatever_its_size(alice, round_trips, lines):
    """The job (visibility and the type's hook, as for the detail) and one page of lines."""
    job = make_job(alice, "step", "started")
    for n in range(lines):
        job.log(f"line {n}")
    client = _client(alice)
    costs = {}
    for page_size in (1, 50, 200):
        client.get(f"{API}{job.pk}/logs/", {"page_size": page_size})
        round_trips.clear()
        with CaptureQueriesContext(connection) as queries:
            response = client.get(f"{API}{job.pk}/logs/", {"page_size": page_size, "after": 0})
        assert response.status_code == 200
        assert len(response.json()["results"]) == min(page_size, lines)
        costs[page_size] = (len(queries), len(round_trips))
    assert set(costs.values()) == {(2, 0)}, costs
