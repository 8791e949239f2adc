"""The detail and the list read through SQL compiled once per process (``compiled.py``):
every response must equal, byte for byte, what the ORM path answers for the same request,
and a shape that cannot be compiled must fall back to the ORM, not fail."""

from __future__ import annotations

import datetime

import pytest
from conftest import API, make_job, snapshot
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext
from ferry_drf_testproject.drfapp.models import ExportJob, StepJob

from task_ferry.conf import get_progress_store
from task_ferry.models import Job
from task_ferry_drf import compiled

pytestmark = pytest.mark.django_db


@pytest.fixture
def orm_only(monkeypatch):
    """Call ``orm_only()`` to turn compiled reads off (every read through the ORM), as before them."""

    def switch_off():
        compiled.clear()
        monkeypatch.setattr(compiled, "compiled", lambda key, build: None)

    yield switch_off
    compiled.clear()


def _both(client, path: str, params: dict | None, orm_only) -> tuple[bytes, bytes]:
    compiled.clear()
    client.get(path, params)  # compile
    fast = client.get(path, params)
    # The fast side did go through compiled SQL (SQLite hands datetimes over as text: not those).
    if connection.vendor == "postgresql" or not (params or {}).keys() & {"created_after", "created_before"}:
        assert [read for read in compiled._CACHE.values() if read is not None]
    orm_only()
    slow = client.get(path, params)
    assert fast.status_code == slow.status_code
    assert fast.headers.get("X-Total-Count") == slow.headers.get("X-Total-Count")
    assert fast.headers.get("Link") == slow.headers.get("Link")
    return fast.content, slow.content


@pytest.mark.parametrize("kind", ["export_table", "step", "plain", "guarded", "legacy", "unregistered", "gone"])
@pytest.mark.parametrize("viewer", ["owner", "staff", "stranger"])
def test_the_detail_answers_as_the_orm_does(alice, bob, staff, client_for, orm_only, kind, viewer):
    if kind == "legacy":  # a 0.1.1 row: no type, the content type names the model
        job = make_job(alice, "", "started", model=ExportJob)
    elif kind == "unregistered":  # a type no longer registered: the content type names the model
        job = make_job(alice, "", "started", model=StepJob)
        Job._base_manager.filter(pk=job.pk).update(type="no-longer-registered")
    elif kind == "gone":  # a content type whose model no longer exists
        job = make_job(alice, "", "started", model=Job)
        ct = ContentType.objects.create(app_label="vanished", model="oldjob")
        Job._base_manager.filter(pk=job.pk).update(content_type=ct)
    else:
        job = make_job(alice, kind, "started", result={"rows": 3} if kind == "plain" else None)
    get_progress_store().write(snapshot(job.pk, 40, "halfway"))
    user = {"owner": alice, "staff": staff, "stranger": bob}[viewer]

    fast, slow = _both(client_for(user), f"{API}{job.pk}/", None, orm_only)

    assert fast == slow
    assert (b'"progress_percentage":40' in fast) is (viewer != "stranger")


def test_a_permission_hook_sees_the_job_as_its_model_with_every_field(alice, client_for, guard_policy):
    job = make_job(alice, "guarded", "started", steps=7)
    seen = []
    guard_policy["view"] = lambda user, job: seen.append(job) or job.steps == 7
    client = client_for(alice)
    client.get(f"{API}{job.pk}/")
    seen.clear()

    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"{API}{job.pk}/")

    assert response.status_code == 200
    assert len(queries) == 3  # session, user, the job: the hook's instance costs none
    (instance,) = seen
    assert type(instance) is StepJob and instance.pk == job.pk and instance.user_id == alice.pk
    assert instance.content_type == ContentType.objects.get_for_model(StepJob)
    assert instance.get_deferred_fields() == set()

    guard_policy["view"] = False
    assert client.get(f"{API}{job.pk}/").json() == {"detail": "Job not found."}


LIST_QUERIES = [
    {},
    {"limit": 3},
    {"limit": 3, "offset": 3},
    {"limit": 3, "offset": 30},
    {"state": "started,failed"},
    {"state": "finished", "type": "export_table,plain"},
    {"type": "step", "ordering": "created_at"},
    {"created_after": "2020-01-01T00:00:00Z", "created_before": "2100-01-01"},
    {"ordering": "-updated_at", "limit": 4, "cursor": ""},
    {"ordering": "id", "limit": 4, "cursor": ""},
    {"user": "all"},
]


@pytest.mark.parametrize("params", LIST_QUERIES, ids=[str(q) or "defaults" for q in LIST_QUERIES])
@pytest.mark.parametrize("viewer", ["owner", "staff"])
def test_the_list_answers_as_the_orm_does(alice, bob, staff, client_for, orm_only, params, viewer):
    for n, (kind, state) in enumerate(
        [("step", "started"), ("export_table", "finished"), ("plain", "failed"), ("guarded", "pending")] * 3
    ):
        job = make_job(alice if n % 5 else bob, kind, state)
        if state == "started":
            get_progress_store().write(snapshot(job.pk, n, f"at {n}"))
    make_job(alice, "", "finished", model=ExportJob)
    client = client_for(staff if viewer == "staff" else alice)
    if params == {"user": "all"} and viewer == "owner":
        params = {}

    fast, slow = _both(client, API, params, orm_only)

    assert fast == slow
    assert fast.startswith(b"[")


def test_following_a_cursor_reads_the_same_pages(alice, client_for, orm_only):
    for _ in range(9):
        make_job(alice, "step", "finished")
    client = client_for(alice)

    def pages():
        out, params = [], {"limit": 2, "cursor": "", "ordering": "-created_at"}
        while True:
            response = client.get(API, params)
            out.append(response.content)
            token = response.headers.get("X-Next-Cursor")
            if not token:
                return out
            params["cursor"] = token

    compiled.clear()
    fast = pages()
    if connection.vendor == "postgresql":  # the cursor's key is a datetime slot
        assert sum(read is not None for read in compiled._CACHE.values()) == 2  # first page, next pages
    orm_only()
    assert fast == pages()
    assert len(fast) == 5


def test_values_the_driver_would_change_are_not_compiled():
    """A slot whose value reaches the database altered (SQLite stores datetimes as text) is not
    found among the parameters: that shape is left to the ORM."""
    after = compiled.datetime_slot()
    query = Job._base_manager.filter(created_at__gte=after).values("id")
    if connection.vendor == "sqlite":
        with pytest.raises(compiled.NotCompilable):
            compiled.CompiledValues(query, {"after": after})
    else:
        read = compiled.CompiledValues(query, {"after": after})
        assert read.rows(after=datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)) == []


def test_a_slot_missing_from_the_query_refuses_to_compile():
    query = Job._base_manager.filter(state="started").values("id")
    with pytest.raises(compiled.NotCompilable, match="slots not found"):
        compiled.CompiledValues(query, {"user": compiled.int_slot()})


def test_the_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(compiled, "MAX_ENTRIES", 3)
    compiled.clear()

    def build():
        slot = compiled.int_slot()
        return Job._base_manager.filter(pk=slot).values("id"), {"pk": slot}

    for n in range(7):
        assert compiled.compiled(("t", n), build).rows(pk=1) == []
    assert 1 <= len(compiled._CACHE) <= 3
    compiled.clear()
