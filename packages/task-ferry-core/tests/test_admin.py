"""The Django admin for jobs, driven through the test client as a logged-in user.

``transactional_db``: snapshots go to the ``database`` store through its own
connection, which (on SQLite) cannot write while a test transaction holds the
database's write lock.
"""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext
from ferry_core_testproject.testapp.models import ExportJob, ScriptedJob

from task_ferry import conf
from task_ferry.models import Job
from task_ferry.protocols import Snapshot

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/task_ferry/job/"


def make(model=ScriptedJob, job_type="scripted", **fields):
    ct = ContentType.objects.get_for_model(model, for_concrete_model=False)
    return model.objects.create(content_type=ct, type=job_type, **fields)


def publish(job, pct, label=""):
    conf.get_progress_store().write(Snapshot(job.pk, "started", pct, label, time.time()))


def page_ids(response) -> list[int]:
    return [job.pk for job in response.context["cl"].result_list]


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.fixture
def alice():
    return get_user_model().objects.create_user("alice")


@pytest.fixture
def jobs(alice):
    running = make(state="started", user=alice)
    publish(running, 42, "step 4 of 10")
    finished = make(
        ExportJob,
        "export_table",
        table_id=7,
        output_path="/exports/t7.csv",
        queue="exports",
        state="finished",
        progress_percentage=100,
    )
    failed = make(state="failed", error="boom: disk full", progress_percentage=30)
    # A stale snapshot of an ended job must not override the database.
    publish(failed, 80, "stale")
    pending = make(user=alice)
    return {"running": running, "finished": finished, "failed": failed, "pending": pending}


def test_changelist_shows_live_progress_from_one_store_read(admin_client, jobs, store_reads):
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    html = response.content.decode()
    assert '<progress max="100" value="42"' in html and "step 4 of 10" in html
    assert '<progress max="100" value="30"' in html and "stale" not in html
    assert '<progress max="100" value="100"' in html
    assert set(page_ids(response)) == {j.pk for j in jobs.values()}
    # One batched read, of the jobs that have not ended.
    assert len(store_reads) == 1
    assert sorted(store_reads[0]) == sorted([jobs["running"].pk, jobs["pending"].pk])


def test_changelist_cost_does_not_grow_with_the_page(admin_client, alice, store_reads):
    def load():
        store_reads.clear()
        with CaptureQueriesContext(connection) as queries:
            response = admin_client.get(CHANGELIST)
        assert response.status_code == 200
        return len(page_ids(response)), len(store_reads), len(queries)

    for i in range(3):
        publish(make(state="started", user=alice), i)
    small = load()
    for i in range(27):
        job = make(state="started" if i % 2 else "finished", user=alice if i % 3 else None)
        if i % 2:
            publish(job, 50)
    large = load()
    assert small[0] == 3 and large[0] == 30
    # One store read per page, and no query per row (owner column, progress column).
    assert small[1] == large[1] == 1
    assert small[2] == large[2]


def test_changelist_renders_when_the_store_is_down(admin_client, jobs, monkeypatch):
    def down(job_ids):
        raise ConnectionError("store is down")

    monkeypatch.setattr(conf.get_progress_store(), "read_many", down)
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    assert '<progress max="100" value="0"' in response.content.decode()  # the running job's DB value
    assert any("Live progress is unavailable" in m and "store is down" in m for m in messages_of(response))


def test_filters_and_search(admin_client, jobs, alice):
    assert page_ids(admin_client.get(CHANGELIST, {"state": "failed"})) == [jobs["failed"].pk]
    assert page_ids(admin_client.get(CHANGELIST, {"type": "export_table"})) == [jobs["finished"].pk]
    assert page_ids(admin_client.get(CHANGELIST, {"queue": "exports"})) == [jobs["finished"].pk]
    owned = page_ids(admin_client.get(CHANGELIST, {"user__id__exact": alice.pk}))
    assert sorted(owned) == sorted([jobs["running"].pk, jobs["pending"].pk])
    assert page_ids(admin_client.get(CHANGELIST, {"q": "disk full"})) == [jobs["failed"].pk]
    assert page_ids(admin_client.get(CHANGELIST, {"q": str(jobs["pending"].pk)})) == [jobs["pending"].pk]
    # The owner filter offers only users who own jobs.
    other = get_user_model().objects.create_user("bob")
    html = admin_client.get(CHANGELIST).content.decode()
    assert f"user__id__exact={alice.pk}" in html and f"user__id__exact={other.pk}" not in html


def test_cancel_action_cancels_pending_and_running_and_reports_ended(admin_client, jobs):
    selected = [jobs["pending"].pk, jobs["running"].pk, jobs["finished"].pk, jobs["failed"].pk]
    response = admin_client.post(
        CHANGELIST, {"action": "cancel_jobs", "_selected_action": selected, "index": 0}, follow=True
    )
    assert response.status_code == 200
    states = dict(Job.objects.values_list("pk", "state"))
    assert states[jobs["pending"].pk] == "cancelled"
    assert states[jobs["running"].pk] == "cancelled"
    assert states[jobs["finished"].pk] == "finished" and states[jobs["failed"].pk] == "failed"
    # The running job hears about it at its next flush, through the store.
    snap = conf.get_progress_store().read_many([jobs["running"].pk])[jobs["running"].pk]
    assert snap.cancel_requested
    msgs = messages_of(response)
    assert any(m.startswith("Cancelled 2 jobs.") for m in msgs), msgs
    assert "2 jobs had already ended and were left unchanged." in msgs

    # Cancelling an already-cancelled job counts as ended, not as cancelled again.
    response = admin_client.post(
        CHANGELIST, {"action": "cancel_jobs", "_selected_action": [jobs["pending"].pk], "index": 0}, follow=True
    )
    assert messages_of(response) == ["1 job had already ended and was left unchanged."]


def test_change_page_shows_type_specific_fields_read_only(admin_client, jobs):
    job = jobs["finished"]
    response = admin_client.get(f"{CHANGELIST}{job.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Export job fields" in html
    assert "Table id" in html and '<div class="readonly">7</div>' in html
    assert '<div class="readonly">/exports/t7.csv</div>' in html
    assert '<div class="readonly">finished</div>' in html
    # Nothing is editable: no inputs for fields, no save button.
    assert 'name="_save"' not in html
    assert 'name="state"' not in html and 'name="table_id"' not in html
    # And a POST cannot change anything.
    assert admin_client.post(f"{CHANGELIST}{job.pk}/change/", {"state": "pending"}).status_code == 403
    assert ExportJob.objects.get(pk=job.pk).state == "finished"


def test_change_page_of_a_running_job_shows_live_progress(admin_client, jobs):
    html = admin_client.get(f"{CHANGELIST}{jobs['running'].pk}/change/").content.decode()
    assert '<progress max="100" value="42"' in html and "step 4 of 10" in html
    assert "Scripted job fields" in html and "Step sleep" in html


def test_no_add(admin_client):
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    assert f'href="{CHANGELIST}add/"' not in admin_client.get(CHANGELIST).content.decode()


def test_view_only_staff_cannot_cancel(client, jobs):
    staff = get_user_model().objects.create_user("viewer", password="pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_job", content_type__app_label="task_ferry"))
    client.force_login(staff)
    response = client.get(CHANGELIST)
    assert response.status_code == 200
    assert "cancel_jobs" not in response.content.decode()
    response = client.post(CHANGELIST, {"action": "cancel_jobs", "_selected_action": [jobs["pending"].pk], "index": 0})
    assert Job.objects.get(pk=jobs["pending"].pk).state == "pending"
