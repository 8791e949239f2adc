from __future__ import annotations

import itertools
import time
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone
from ferry_drf_testproject.drfapp import job_types
from ferry_drf_testproject.drfapp.models import ExportJob, StepJob
from rest_framework.test import APIClient

from task_ferry.conf import get_progress_store
from task_ferry.models import Job
from task_ferry.protocols import Snapshot
from task_ferry.states import JOB_STATES_ENDED

pytest_plugins = ["task_ferry.testing.fixtures"]

PASSWORD = "ferry-pw"
API = "/api/jobs/"

#: 0.1.1's job JSON (task_ferry/api/serializers.py, ``JobSerializer.Meta.fields``).
FIELDS_011 = (
    "id",
    "state",
    "progress_percentage",
    "progress_state",
    "error",
    "human_readable_error",
    "created_at",
    "updated_at",
)


@pytest.fixture(autouse=True)
def redis_db4():
    """The machine's Redis, database 4 (``FERRY_DRF_REDIS_URL``), emptied before and after each
    test: the test settings' progress store lives there. No other database is touched."""
    client = redis.Redis.from_url(settings.REDIS_TEST_URL, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(
            f"Redis is not reachable at {settings.REDIS_TEST_URL} ({exc}). Start it with "
            "`redis-server --daemonize yes --port 6379 --save '' --appendonly no`, or point "
            "FERRY_DRF_REDIS_URL at a database these tests may flush."
        )
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def guard_policy():
    """``GuardedJobType``'s answers per action (a bool or ``(user, job) -> bool``); reset after the test."""
    job_types.GUARD_POLICY.clear()
    job_types.GUARD_CALLS.clear()
    yield job_types.GUARD_POLICY
    job_types.GUARD_POLICY.clear()
    job_types.GUARD_CALLS.clear()


_names = itertools.count()


@pytest.fixture
def make_user(db):
    def make(name: str | None = None, *, staff: bool = False):
        name = name or f"user{next(_names)}"
        return get_user_model().objects.create_user(name, password=PASSWORD, is_staff=staff)

    return make


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def bob(make_user):
    return make_user("bob")


@pytest.fixture
def staff(make_user):
    return make_user("operator", staff=True)


@pytest.fixture
def client_for():
    """``client_for(user)``: an ``APIClient`` logged in with a real session (``None``: anonymous)."""

    def make(user=None, *, csrf: bool = False) -> APIClient:
        client = APIClient(enforce_csrf_checks=csrf)
        if user is not None:
            client.force_login(user)
        return client

    return make


_MODELS = {"export_table": ExportJob, "step": StepJob, "plain": Job, "guarded": StepJob}
_created_offsets = itertools.count()


def make_job(user=None, type: str = "step", state: str = "pending", **fields):
    """A job row in ``state`` written directly (no run), like a worker would have left it.

    ``created_at`` steps back one second per call unless given, so rows are strictly
    ordered newest-last-made-first as the API lists them. ``type=""`` with ``model=`` makes
    a 0.1.1 row (no type column value)."""
    model = fields.pop("model", None) or _MODELS[type]
    now = timezone.now()
    fields.setdefault("created_at", now - timedelta(seconds=10_000 - next(_created_offsets)))
    if model is ExportJob:
        fields.setdefault("table_id", 1)
    if state != "pending":
        fields.setdefault("started_at", fields["created_at"] + timedelta(seconds=1))
        fields.setdefault("attempts", 1)
    if state in JOB_STATES_ENDED:
        fields.setdefault("finished_at", fields["created_at"] + timedelta(seconds=2))
        fields.setdefault("progress_percentage", 100 if state == "finished" else 0)
    created_at = fields.pop("created_at")
    job = model.objects.create(
        user=user,
        type=type,
        state=state,
        content_type=ContentType.objects.get_for_model(model, for_concrete_model=False),
        **fields,
    )
    # auto_now_add ignores a given value: set it afterwards.
    Job._base_manager.filter(pk=job.pk).update(created_at=created_at)
    job.created_at = created_at
    return job


@pytest.fixture
def job_factory(db):
    return make_job


def snapshot(job_id: int, percentage: int, label: str = "", state: str = "started", **kw) -> Snapshot:
    return Snapshot(job_id, state, percentage, label, kw.pop("updated_at", time.time()), **kw)


@pytest.fixture
def store():
    return get_progress_store()
