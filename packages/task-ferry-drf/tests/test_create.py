"""``POST /``: create a job of a registered type from ``{"type": ..., "values": {...}}``."""

from __future__ import annotations

import pytest
from conftest import API, make_job
from django.db import connection
from ferry_drf_testproject.drfapp import job_types

from task_ferry.models import Job
from task_ferry.registry import job_type_registry

pytestmark = pytest.mark.django_db


def post(client, body):
    return client.post(API, body, format="json")


def test_creates_runs_and_answers_201_with_the_job_and_its_location(alice, client_for):
    response = post(client_for(alice), {"type": "export_table", "values": {"table_id": 42}})

    assert response.status_code == 201, response.content
    body = response.json()
    job = Job._base_manager.get(pk=body["id"])
    assert job.user_id == alice.pk and job.type == "export_table"
    # The immediate executor of the test settings ran it inline.
    assert body["state"] == "finished" and body["progress_percentage"] == 100
    assert body["values"] == {"table_id": 42, "output_path": "/exports/42.csv"}
    assert response["Location"].endswith(f"{API}{job.pk}/")


def test_values_are_optional(alice, client_for):
    response = post(client_for(alice), {"type": "plain"})
    assert response.status_code == 201 and response.json()["state"] == "finished"


def test_a_job_that_fails_while_run_inline_is_still_created(alice, client_for):
    """The immediate executor re-raises a failed job's error; the job exists, so it is a 201."""
    response = post(client_for(alice), {"type": "step", "values": {"steps": 2, "fail_with": "disk full"}})

    assert response.status_code == 201, response.content
    assert response.json()["state"] == "failed" and response.json()["error"] == "disk full"


def test_prepare_values_errors_are_400_under_values(alice, client_for):
    response = post(client_for(alice), {"type": "export_table", "values": {}})

    assert response.status_code == 400
    assert response.json() == {"values": ["table_id is required"]}
    assert not Job._base_manager.exists()


def test_a_key_error_in_prepare_values_names_the_missing_field(alice, client_for, monkeypatch):
    monkeypatch.setattr(job_type_registry.get("plain"), "prepare_values", lambda values, user: {"x": values["note"]})

    response = post(client_for(alice), {"type": "plain", "values": {}})

    assert response.status_code == 400
    assert response.json() == {"values": {"note": ["This field is required."]}}


@pytest.mark.parametrize(
    "values,field",
    [
        ({"table_id": "forty-two"}, "table_id"),
        ({"table_id": 1, "output_path": "x" * 51}, "output_path"),  # max_length 50
        ({"table_id": [1]}, "table_id"),
    ],
)
def test_values_that_do_not_fit_the_types_fields_are_400_field_errors(alice, client_for, values, field):
    response = post(client_for(alice), {"type": "export_table", "values": values})

    assert response.status_code == 400, response.content
    assert field in response.json()["values"]
    assert not Job._base_manager.exists()


def test_a_value_out_of_the_databases_range_is_a_400(alice, client_for):
    response = post(client_for(alice), {"type": "export_table", "values": {"table_id": 2**70}})

    assert response.status_code == 400, response.content
    assert "values" in response.json()
    assert not Job._base_manager.exists()


def test_a_nul_character_is_a_400_on_every_database(alice, client_for):
    response = post(client_for(alice), {"type": "step", "values": {"fail_with": "a\x00b", "steps": 1}})

    assert response.status_code in (201, 400), response.content
    if connection.vendor == "postgresql":  # PostgreSQL text cannot hold NUL
        assert response.status_code == 400


def test_unknown_value_keys_are_400(alice, client_for):
    response = post(client_for(alice), {"type": "export_table", "values": {"table_id": 1, "colour": "red"}})

    assert response.status_code == 400 and "colour" in str(response.json()["values"])


@pytest.mark.parametrize(
    "key",
    [
        "state",
        "user",
        "user_id",
        "progress_percentage",
        "result",
        "id",
        "pk",
        "job_ptr",
        "job_ptr_id",
        "executor_task_id",
        "priority",
        "created_at",
    ],
)
def test_fields_of_the_base_job_cannot_be_set(alice, bob, client_for, key):
    value = bob.pk if key.startswith(("user", "id", "pk", "job_ptr")) else "finished"

    response = post(client_for(alice), {"type": "export_table", "values": {"table_id": 1, key: value}})

    assert response.status_code == 400
    assert response.json() == {"values": {key: ["This field cannot be set through the API."]}}
    assert not Job._base_manager.exists()


@pytest.mark.parametrize(
    "body,field",
    [
        ({"type": "no_such_type"}, "type"),
        ({"values": {"table_id": 1}}, "type"),
        ({"type": "export_table", "values": [1, 2]}, "values"),
        ({"type": "export_table", "values": "table_id=1"}, "values"),
        ({"type": ["export_table"]}, "type"),
    ],
)
def test_bad_bodies_are_400(alice, client_for, body, field):
    response = post(client_for(alice), body)

    assert response.status_code == 400 and field in response.json()


def test_unknown_type_lists_the_types_the_caller_may_create(alice, client_for, guard_policy):
    guard_policy["create"] = False

    message = post(client_for(alice), {"type": "nope"}).json()["type"][0]

    assert "export_table" in message and "step" in message and "guarded" not in message


def test_a_body_that_is_not_json_is_400(alice, client_for):
    response = client_for(alice).post(API, "{not json", content_type="application/json")
    assert response.status_code == 400


def test_max_count_is_a_409_a_person_can_act_on(alice, client_for):
    make_job(alice, "export_table", "pending")
    make_job(alice, "export_table", "started")

    response = post(client_for(alice), {"type": "export_table", "values": {"table_id": 1}})

    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "max_count_exceeded"
    assert "at most 2" in body["detail"] and "cancel one" in body["detail"]
    assert Job._base_manager.count() == 2


def test_max_count_counts_the_callers_jobs_only(alice, bob, client_for):
    make_job(bob, "export_table", "pending")
    make_job(bob, "export_table", "pending")
    assert post(client_for(alice), {"type": "export_table", "values": {"table_id": 1}}).status_code == 201


def test_the_types_create_hook_can_refuse(alice, client_for, guard_policy):
    guard_policy["create"] = lambda user, job: user.username != "alice"

    response = post(client_for(alice), {"type": "guarded", "values": {"steps": 1}})

    assert response.status_code == 403
    assert not Job._base_manager.exists()
    assert ("alice", "create", None) in job_types.GUARD_CALLS


def test_session_authentication_keeps_its_csrf_check(alice, client_for):
    client = client_for(alice, csrf=True)

    refused = post(client, {"type": "plain"})
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]

    client.get(API)  # no token yet: get one the way a page would, from the cookie Django sets
    from django.middleware.csrf import get_token
    from django.test import RequestFactory

    request = RequestFactory().get("/")
    token = get_token(request)
    client.cookies["csrftoken"] = request.META["CSRF_COOKIE"]
    accepted = client.post(API, {"type": "plain"}, format="json", HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 201, accepted.content
