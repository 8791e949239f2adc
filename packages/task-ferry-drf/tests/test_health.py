"""``GET /health/``: counts, oldest pending age, stalled jobs, failure rate; staff or token."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from conftest import API, make_job, snapshot
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from task_ferry.conf import get_progress_store
from task_ferry.states import ALL_STATES

pytestmark = pytest.mark.django_db

HEALTH = f"{API}health/"
TOKEN = "a-monitoring-token-of-some-length"


@pytest.fixture
def with_token(settings):
    settings.TASK_FERRY_DRF = {
        **settings.TASK_FERRY_DRF,
        "HEALTH_TOKEN": TOKEN,
        "STALLED_AFTER": 60,
        "FAILURE_WINDOW": 3600,
    }


def test_reports_what_an_operator_watches(alice, bob, staff, client_for, with_token):
    now = timezone.now()
    store = get_progress_store()
    make_job(alice, state="pending", created_at=now - timedelta(seconds=300))
    make_job(bob, state="pending", created_at=now - timedelta(seconds=30))
    quiet = make_job(alice, state="started", started_at=now - timedelta(seconds=600))  # no snapshot at all
    stale = make_job(alice, state="started", started_at=now - timedelta(seconds=600))
    store.write(snapshot(stale.pk, 10, updated_at=time.time() - 120))
    busy = make_job(bob, state="started", started_at=now - timedelta(seconds=600))
    store.write(snapshot(busy.pk, 50))
    make_job(alice, state="started", started_at=now - timedelta(seconds=5))  # just started
    for _ in range(3):
        make_job(alice, state="finished", finished_at=now - timedelta(seconds=100))
    make_job(bob, state="failed", finished_at=now - timedelta(seconds=100))
    make_job(bob, state="failed", finished_at=now - timedelta(days=2))  # outside the window
    make_job(bob, state="cancelled", finished_at=now - timedelta(seconds=10))

    response = client_for(staff).get(HEALTH)

    assert response.status_code == 200, response.content
    body = response.json()
    # Every state core knows is listed, those without jobs with 0.
    assert body["counts"] == {
        **dict.fromkeys(ALL_STATES, 0),
        "pending": 2,
        "started": 4,
        "finished": 3,
        "failed": 2,
        "cancelled": 1,
    }
    assert 299 <= body["oldest_pending_age_seconds"] < 330
    assert body["stalled"]["threshold_seconds"] == 60
    assert body["stalled"]["count"] == 2 and sorted(body["stalled"]["job_ids"]) == sorted([quiet.pk, stale.pk])
    assert body["failure_rate"] == {"window_seconds": 3600, "ended": 5, "failed": 1, "rate": 0.2}
    assert body["store"] == {"backend": "RedisProgressStore", "ok": True, "error": ""}
    assert body["event_streams"] == 0


def test_an_empty_installation(staff, client_for):
    body = client_for(staff).get(HEALTH).json()
    assert body["counts"] == dict.fromkeys(ALL_STATES, 0)
    assert body["oldest_pending_age_seconds"] is None
    assert body["failure_rate"]["rate"] == 0.0 and body["stalled"]["count"] == 0


def test_a_token_opens_it_without_a_user(db, with_token):
    assert APIClient().get(HEALTH, HTTP_X_FERRY_HEALTH_TOKEN=TOKEN).status_code == 200
    assert APIClient().get(HEALTH, HTTP_X_FERRY_HEALTH_TOKEN=TOKEN[:-1] + "X").status_code in (401, 403)
    assert APIClient().get(HEALTH).status_code in (401, 403)


def test_non_staff_users_are_refused_even_with_jobs(alice, client_for, with_token):
    make_job(alice)
    assert client_for(alice).get(HEALTH).status_code == 403


def test_without_a_configured_token_only_staff_get_in(alice, staff, client_for):
    assert APIClient().get(HEALTH, HTTP_X_FERRY_HEALTH_TOKEN="").status_code in (401, 403)
    assert APIClient().get(HEALTH, HTTP_X_FERRY_HEALTH_TOKEN="None").status_code in (401, 403)
    assert client_for(staff).get(HEALTH).status_code == 200


def test_an_unreachable_store_is_reported_not_raised(staff, client_for, settings):
    settings.TASK_FERRY = {
        **settings.TASK_FERRY,
        "PROGRESS_STORE": {
            "BACKEND": "redis",
            "OPTIONS": {"URL": "redis://127.0.0.1:1/4", "SOCKET_CONNECT_TIMEOUT": 0.2},
        },
    }
    body = client_for(staff).get(HEALTH).json()
    assert body["store"]["ok"] is False and "ConnectionError" in body["store"]["error"]


def test_settings_are_checked(settings, capsys):
    settings.TASK_FERRY_DRF = {"PAGE_SIZE": 0, "SSE_KEEPALIVE": "soon", "HEALTH_TOKEN": "short", "PAGESIZE": 3}
    from task_ferry_drf.checks import check_settings

    messages = {(m.id, m.msg.split(" must")[0]) for m in check_settings()}

    assert ("task_ferry_drf.E001", 'TASK_FERRY_DRF["PAGE_SIZE"]') in messages
    assert ("task_ferry_drf.E001", 'TASK_FERRY_DRF["SSE_KEEPALIVE"]') in messages
    assert ("task_ferry_drf.E001", 'TASK_FERRY_DRF["HEALTH_TOKEN"]') in messages
    assert any(m[0] == "task_ferry_drf.W001" and "PAGE_SIZE" in m[1] for m in messages)
    settings.TASK_FERRY_DRF = {}
    call_command("check", "--fail-level", "WARNING")  # the defaults pass
