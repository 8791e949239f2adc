"""``POST /<id>/cancel/`` (0.1.1 semantics) and ``POST /<id>/retry/``."""

from __future__ import annotations

import pytest
from conftest import API, FIELDS_011, make_job, snapshot
from ferry_drf_testproject.drfapp import job_types

from task_ferry.conf import get_progress_store
from task_ferry.models import Job

pytestmark = pytest.mark.django_db


def cancel(client, job):
    return client.post(f"{API}{job.pk}/cancel/")


def retry(client, job):
    return client.post(f"{API}{job.pk}/retry/")


def state_of(job) -> str:
    return Job._base_manager.get(pk=job.pk).state


def test_cancelling_a_pending_job_is_idempotent(alice, client_for):
    job = make_job(alice, state="pending")
    client = client_for(alice)

    first, second = cancel(client, job), cancel(client, job)

    assert first.status_code == second.status_code == 200
    assert first.json()["state"] == second.json()["state"] == "cancelled"
    assert set(FIELDS_011) <= set(first.json())
    assert state_of(job) == "cancelled"


def test_cancelling_a_running_job_records_it_and_raises_the_stores_flag(alice, client_for):
    job = make_job(alice, state="started")
    store = get_progress_store()
    store.write(snapshot(job.pk, 35))

    response = cancel(client_for(alice), job)

    assert response.status_code == 200 and response.json()["state"] == "cancelled"
    assert state_of(job) == "cancelled"
    # The worker's next flush reads the flag and stops the job.
    assert store.write(snapshot(job.pk, 36)) is True


@pytest.mark.parametrize("state", ["finished", "failed"])
def test_cancelling_an_ended_job_is_400(alice, client_for, state):
    job = make_job(alice, state=state)

    response = cancel(client_for(alice), job)

    assert response.status_code == 400
    assert state in response.json()["detail"] and response.json()["code"] == "not_cancellable"
    assert state_of(job) == state


@pytest.mark.parametrize("state", ["failed", "cancelled"])
def test_retry_runs_a_failed_or_cancelled_job_again(alice, client_for, state):
    job = make_job(alice, "step", state, steps=2, error="boom" if state == "failed" else "")

    response = retry(client_for(alice), job)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["state"] == "finished" and body["error"] == "" and body["attempts"] == 2
    assert body["id"] == job.pk


@pytest.mark.parametrize("state", ["pending", "started", "finished"])
def test_retry_of_a_job_that_is_not_failed_or_cancelled_is_400(alice, client_for, state):
    job = make_job(alice, "step", state)

    response = retry(client_for(alice), job)

    assert response.status_code == 400 and response.json()["code"] == "not_retryable"
    assert state_of(job) == state


def test_a_retry_that_fails_again_answers_with_the_failed_job(alice, client_for):
    job = make_job(alice, "step", "failed", steps=1, fail_with="still broken")

    response = retry(client_for(alice), job)

    assert response.status_code == 200, response.content
    assert response.json()["state"] == "failed" and response.json()["error"] == "still broken"


def test_retry_respects_max_count(alice, client_for):
    make_job(alice, "export_table", "pending")
    make_job(alice, "export_table", "started")
    failed = make_job(alice, "export_table", "failed")

    response = retry(client_for(alice), failed)

    assert response.status_code == 409 and response.json()["code"] == "max_count_exceeded"
    assert state_of(failed) == "failed"


def test_retry_of_a_job_whose_type_is_gone_is_400(alice, client_for):
    job = make_job(alice, "step", "failed")
    Job._base_manager.filter(pk=job.pk).update(type="removed_type")

    response = retry(client_for(alice), job)

    assert response.status_code == 400 and "no longer registered" in response.json()["detail"]


@pytest.mark.parametrize("action", ["cancel", "retry"])
def test_the_types_hook_can_refuse_cancel_and_retry(alice, client_for, guard_policy, action):
    job = make_job(alice, "guarded", "pending" if action == "cancel" else "failed")
    guard_policy[action] = False

    response = client_for(alice).post(f"{API}{job.pk}/{action}/")

    assert response.status_code == 403
    assert state_of(job) == ("pending" if action == "cancel" else "failed")
    assert ("alice", action, job.pk) in job_types.GUARD_CALLS


def test_staff_may_cancel_and_retry_other_users_jobs(alice, staff, client_for):
    pending, failed = make_job(alice, state="pending"), make_job(alice, "step", "failed", steps=1)
    client = client_for(staff)

    assert cancel(client, pending).status_code == 200 and state_of(pending) == "cancelled"
    assert retry(client, failed).status_code == 200 and state_of(failed) == "finished"
