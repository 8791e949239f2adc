"""Cancelling a pending job tells the progress store's live readers at once.

A pending job has no runner that would announce its end, so ``JobHandler.cancel``
publishes the cancelled state itself through ``store.clear(job_id, final)`` once
the cancel has committed — for stores with a live channel (``supports_subscribe``).
Stores without one are not written to (their readers poll, and the row decides
for an ended job). The end-to-end proof with the ``redis`` store's channel and a
server-sent-events stream is in task-ferry-drf's ``tests/test_events.py``.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import override_settings

from task_ferry.conf import get_progress_store, reset
from task_ferry.executors.base import BaseExecutor
from task_ferry.handler import JobHandler
from task_ferry.models import ProgressRecord
from task_ferry.protocols import Snapshot
from task_ferry.states import JOB_CANCELLED
from task_ferry.stores.database import DatabaseProgressStore


class ParkingExecutor(BaseExecutor):
    """Accepts every dispatch and runs nothing: jobs stay pending."""

    supports_defer_on_commit = True
    out_of_process = True

    def submit(self, dispatch):
        return None


class LiveDatabaseStore(DatabaseProgressStore):
    """The database store claiming a live channel, recording what ``clear`` is asked to announce."""

    supports_subscribe = True

    def __init__(self, options=None):
        super().__init__(options)
        self.cleared: list[tuple[int, Snapshot | None]] = []

    def clear(self, job_id, final=None):
        self.cleared.append((job_id, final))
        super().clear(job_id, final)


PARKING = f"{__name__}.ParkingExecutor"


@pytest.fixture
def user(transactional_db):
    return get_user_model().objects.create_user("alice")


@pytest.fixture
def live_store():
    with override_settings(TASK_FERRY={"EXECUTOR": PARKING, "PROGRESS_STORE": f"{__name__}.LiveDatabaseStore"}):
        yield get_progress_store()
        reset()


@pytest.fixture
def database_store():
    with override_settings(TASK_FERRY={"EXECUTOR": PARKING, "PROGRESS_STORE": "database"}):
        yield get_progress_store()
        reset()


def test_a_pending_cancel_announces_the_cancelled_state_after_the_commit(user, live_store):
    job = JobHandler.create_and_start(user, "export_table", table_id=1)

    with transaction.atomic():
        JobHandler.cancel(user, job.pk)
        assert live_store.cleared == []  # not before the row says cancelled for everyone

    assert len(live_store.cleared) == 1
    job_id, final = live_store.cleared[0]
    assert job_id == job.pk and final is not None
    assert (final.job_id, final.state, final.cancel_requested) == (job.pk, JOB_CANCELLED, False)


def test_a_cancel_that_rolls_back_announces_nothing(user, live_store):
    job = JobHandler.create_and_start(user, "export_table", table_id=1)

    with pytest.raises(RuntimeError), transaction.atomic():
        JobHandler.cancel(user, job.pk)
        raise RuntimeError("the caller's transaction fails")

    assert live_store.cleared == []
    job.refresh_from_db()
    assert job.state == "pending"


def test_cancelling_an_already_cancelled_job_announces_nothing_more(user, live_store):
    job = JobHandler.create_and_start(user, "export_table", table_id=1)
    JobHandler.cancel(user, job.pk)
    JobHandler.cancel(user, job.pk)  # idempotent
    assert [final.state for _, final in live_store.cleared] == [JOB_CANCELLED]


def test_a_store_without_a_live_channel_is_not_written_to(user, database_store, monkeypatch):
    calls = []
    for name in ("write", "clear", "request_cancel"):
        monkeypatch.setattr(database_store, name, lambda *args, _name=name: calls.append(_name))
    job = JobHandler.create_and_start(user, "export_table", table_id=1)

    JobHandler.cancel(user, job.pk)

    assert calls == []
    assert not ProgressRecord.objects.filter(job_id=job.pk).exists()
    job.refresh_from_db()
    assert job.state == JOB_CANCELLED
