"""``GET /<id>/``: one job, its type's fields, and the live rule (store read before the row)."""

from __future__ import annotations

import pytest
from conftest import API, FIELDS_011, make_job, snapshot
from ferry_drf_testproject.drfapp.models import ExportJob

from task_ferry.conf import get_progress_store
from task_ferry.models import Job

pytestmark = pytest.mark.django_db


def test_detail_is_a_superset_of_011s_json_with_the_types_own_fields(alice, client_for):
    job = make_job(alice, "export_table", "finished", table_id=7, output_path="/exports/7.csv", result={"rows": 3})

    response = client_for(alice).get(f"{API}{job.pk}/")

    assert response.status_code == 200
    body = response.json()
    assert set(FIELDS_011) <= set(body)
    assert body["id"] == job.pk and body["type"] == "export_table" and body["state"] == "finished"
    assert body["values"] == {"table_id": 7, "output_path": "/exports/7.csv"}
    assert body["result"] == {"rows": 3}
    assert body["progress_percentage"] == 100 and body["finished_at"] is not None


def test_a_type_on_the_base_model_has_no_values(alice, client_for):
    job = make_job(alice, "plain")
    assert client_for(alice).get(f"{API}{job.pk}/").json()["values"] == {}


def test_a_row_written_by_011_resolves_its_type_through_its_model(alice, client_for):
    job = make_job(alice, "", model=ExportJob, table_id=3)

    body = client_for(alice).get(f"{API}{job.pk}/").json()

    assert body["type"] == "export_table" and body["values"]["table_id"] == 3


def test_state_and_progress_come_from_one_source(alice, client_for):
    """0.1.1 mixed a database state with cached progress; here a running job shows the
    snapshot's three values, an ended one the row's three."""
    store = get_progress_store()
    pending_in_db = make_job(alice, state="pending")
    store.write(snapshot(pending_in_db.pk, 30, "claimed and working"))
    ended = make_job(alice, state="cancelled", progress_percentage=55, progress_state="stopped at 55")
    store.write(snapshot(ended.pk, 80, "stale snapshot"))
    client = client_for(alice)

    def live(job):
        body = client.get(f"{API}{job.pk}/").json()
        return body["state"], body["progress_percentage"], body["progress_state"]

    assert live(pending_in_db) == ("started", 30, "claimed and working")
    assert live(ended) == ("cancelled", 55, "stopped at 55")


def test_a_job_that_ends_between_the_two_reads_shows_its_final_state(alice, client_for, monkeypatch):
    """The store is read first: if the job ends right after (its runner's compare-and-set lands
    between our two reads), the row read second is final and wins; the response never shows
    a running state that had already ended when the row was read."""
    job = make_job(alice, state="started")
    store = get_progress_store()
    store.write(snapshot(job.pk, 70, "almost"))
    read_many = type(store).read_many

    def read_then_finish(self, ids):
        found = read_many(self, ids)
        Job._base_manager.filter(pk=job.pk).update(state="finished", progress_percentage=100, progress_state="done")
        return found

    monkeypatch.setattr(type(store), "read_many", read_then_finish)

    body = client_for(alice).get(f"{API}{job.pk}/").json()

    assert (body["state"], body["progress_percentage"], body["progress_state"]) == ("finished", 100, "done")


def test_a_missing_job_is_404(alice, client_for):
    response = client_for(alice).get(f"{API}987654/")
    assert response.status_code == 404 and response.json() == {"detail": "Job not found."}
