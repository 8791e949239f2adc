"""Security rules: authentication, someone else's job looks missing on every endpoint,
staff, the per-type hook, DRF's permission and throttle settings."""

from __future__ import annotations

from base64 import b64encode

import pytest
from conftest import API, make_job
from django.core.cache import cache
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from task_ferry.models import Job
from task_ferry_drf.views import FerryView

pytestmark = pytest.mark.django_db

#: Every endpoint that takes a job id, with the state a job needs for the call to succeed for its owner.
JOB_ENDPOINTS = [
    ("get", "{id}/", "started"),
    ("post", "{id}/cancel/", "pending"),
    ("post", "{id}/retry/", "failed"),
    ("get", "{id}/events/", "finished"),
    ("get", "{id}/logs/", "started"),
]
MISSING_ID = 999_999


def call(client, method, path, job_id, **extra):
    return getattr(client, method)(API + path.format(id=job_id), **extra)


def fingerprint(response) -> tuple:
    """Everything a client can observe about a response."""
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response.status_code, sorted(response.headers.items()), body


@pytest.mark.parametrize(
    "method,path,state,accept",
    [
        *[(*endpoint, accept) for endpoint in JOB_ENDPOINTS for accept in ("application/json", "*/*")],
        # An EventSource accepts the stream only: the 404 is then an `error` event, the same for both.
        ("get", "{id}/events/", "finished", "text/event-stream"),
    ],
)
def test_someone_elses_job_answers_exactly_like_a_missing_one(alice, bob, client_for, method, path, state, accept):
    bobs = make_job(bob, "step", state, steps=1)
    alices = make_job(alice, "step", state, steps=1)
    client = client_for(alice)

    theirs = call(client, method, path, bobs.pk, HTTP_ACCEPT=accept)
    missing = call(client, method, path, MISSING_ID, HTTP_ACCEPT=accept)

    assert theirs.status_code == 404
    assert fingerprint(theirs) == fingerprint(missing)
    assert Job._base_manager.get(pk=bobs.pk).state == state  # untouched
    # ...while the same call on one's own job works, both ways round.
    assert call(client, method, path, alices.pk, HTTP_ACCEPT=accept).status_code == 200
    assert call(client_for(bob), method, path, alices.pk, HTTP_ACCEPT=accept).status_code == 404


def test_two_users_try_each_others_ids_on_every_endpoint(alice, bob, client_for):
    jobs = {
        user.username: {state: make_job(user, "step", state, steps=1) for state in ("pending", "failed", "finished")}
        for user in (alice, bob)
    }
    clients = {"alice": client_for(alice), "bob": client_for(bob)}
    for me, other in (("alice", "bob"), ("bob", "alice")):
        listed = {job["id"] for job in clients[me].get(API, {"limit": 200}).json()}
        assert listed == {job.pk for job in jobs[me].values()}
        for job in jobs[other].values():
            for method, path, _ in JOB_ENDPOINTS:
                response = call(clients[me], method, path, job.pk)
                assert response.status_code == 404, (me, path, job.state)
                assert response.json() == {"detail": "Job not found."}
    # Nobody's job changed.
    for user_jobs in jobs.values():
        for state, job in user_jobs.items():
            assert Job._base_manager.get(pk=job.pk).state == state


@pytest.mark.parametrize("method,path,state", JOB_ENDPOINTS)
def test_a_job_hidden_by_the_types_view_hook_looks_missing(alice, client_for, guard_policy, method, path, state):
    job = make_job(alice, "guarded", state)
    guard_policy["view"] = lambda user, job: job is None  # lists may include the type, no job may be seen
    client = client_for(alice)

    assert fingerprint(call(client, method, path, job.pk)) == fingerprint(call(client, method, path, MISSING_ID))
    assert Job._base_manager.get(pk=job.pk).state == state


@pytest.mark.parametrize("method,path,state", JOB_ENDPOINTS)
def test_staff_reach_every_users_jobs(alice, staff, client_for, method, path, state):
    job = make_job(alice, "step", state, steps=1)
    assert call(client_for(staff), method, path, job.pk).status_code == 200


@pytest.mark.parametrize("job_id", [2**63 - 1, 2**63, 10**30])
def test_ids_beyond_the_id_range_are_404_not_500(alice, client_for, job_id):
    client = client_for(alice)
    for method, path, _ in JOB_ENDPOINTS:
        assert fingerprint(call(client, method, path, job_id)) == fingerprint(call(client, method, path, MISSING_ID))


@pytest.mark.parametrize("method,path,state", [("get", "", None), ("post", "", None), *JOB_ENDPOINTS])
def test_authentication_is_required_everywhere(alice, method, path, state):
    job = make_job(alice, "step", state or "pending")
    anonymous = APIClient()

    response = call(anonymous, method, path, job.pk)

    assert response.status_code in (401, 403)
    assert fingerprint(response) == fingerprint(call(anonymous, method, path, MISSING_ID))


def test_basic_authentication_is_honoured_because_drfs_settings_are(alice, db):
    job = make_job(alice)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Basic " + b64encode(b"alice:ferry-pw").decode())
    assert client.get(f"{API}{job.pk}/").status_code == 200
    client.credentials(HTTP_AUTHORIZATION="Basic " + b64encode(b"alice:wrong").decode())
    # 403 rather than 401: the first authentication class (session) sends no challenge.
    assert client.get(f"{API}{job.pk}/").status_code == 403


def test_project_wide_permission_classes_apply_on_top(alice, staff, client_for, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    }
    assert client_for(alice).get(API).status_code == 403
    assert client_for(staff).get(API).status_code == 200


@pytest.fixture
def scoped_throttle(monkeypatch):
    """ScopedRateThrottle as a project would configure it in DEFAULT_THROTTLE_CLASSES."""
    rates: dict[str, str] = {}
    monkeypatch.setattr(FerryView, "throttle_classes", [ScopedRateThrottle])
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", rates)
    cache.clear()
    yield rates
    cache.clear()


def test_scoped_throttles_apply_per_scope(alice, client_for, scoped_throttle):
    scoped_throttle["task_ferry_read"] = "2/min"
    job = make_job(alice)
    client = client_for(alice)

    assert [client.get(f"{API}{job.pk}/").status_code for _ in range(3)] == [200, 200, 429]
    # Writes have their own scope, with no rate configured here: not throttled.
    assert all(client.post(f"{API}{job.pk}/cancel/").status_code == 200 for _ in range(3))


def test_the_api_asks_core_s_job_type_policy(alice, bob, staff, monkeypatch):
    """Types without an override get core's default (owner or staff); a job whose type is no
    longer registered, or a type registered without subclassing JobType, gets it too."""
    from ferry_drf_testproject.drfapp.job_types import StepJobType

    from task_ferry.registry import JobType
    from task_ferry_drf.permissions import has_permission

    job = make_job(alice, "step", "finished")
    asked = []
    original = JobType.has_permission.__func__

    def spy(cls, user, action, job=None):
        asked.append((cls.__name__, user.username, action))
        return original(cls, user, action, job)

    monkeypatch.setattr(JobType, "has_permission", classmethod(spy))
    assert has_permission(StepJobType(), alice, "cancel", job) is True
    assert has_permission(StepJobType(), bob, "cancel", job) is False
    assert has_permission(None, staff, "retry", job) is True
    assert asked == [
        ("StepJobType", "alice", "cancel"),
        ("StepJobType", "bob", "cancel"),
        ("JobType", "operator", "retry"),
    ]

    class DuckType:  # registered without subclassing JobType
        def has_permission(self, user, action, job=None):
            return action == "view"

    assert has_permission(DuckType(), bob, "view", job) is True
    assert has_permission(DuckType(), alice, "cancel", job) is False
    assert has_permission(object(), bob, "view", job) is False  # no hook: the default
    with pytest.raises(ValueError, match="create, view, cancel, retry"):
        has_permission(StepJobType(), alice, "destroy", job)
