"""The executor against real ``dramatiq`` worker processes, on Redis and on RabbitMQ: what the kit
does not look at (the message Dramatiq processed, a failing job as a successful message, a
cancelled pending job's message delivered and skipped, the queues a worker consumes).

One worker per broker for the module (one process, one thread, queue ``DEFAULT_QUEUE``);
tests that need another worker start their own."""

from __future__ import annotations

import time

import pytest
from django.conf import settings as django_settings
from ferry_dramatiq_testproject.brokers import deliveries
from ferry_dramatiq_testproject.dramatiqapp.job_types import ROUTED_QUEUE
from ferry_dramatiq_testproject.support import DEFAULT_QUEUE, PREFIX, dramatiq_worker

from task_ferry.handler import JobHandler
from task_ferry.testing.base import wait_until
from task_ferry.testing.executor import wait_for_state
from task_ferry.testing.subprocess import child_env
from task_ferry_dramatiq.actor import ACTOR_NAME

pytestmark = pytest.mark.integration

TIMEOUT = 30.0
GRACE = 2.0


def _ferry(broker) -> dict:
    return {**django_settings.TASK_FERRY, "EXECUTOR": broker.executor_setting()}


@pytest.fixture(scope="module")
def default_worker(broker, django_db_setup):
    with dramatiq_worker(queues=[DEFAULT_QUEUE], threads=1, env=child_env(settings={"TASK_FERRY": _ferry(broker)})):
        yield


@pytest.fixture(autouse=True)
def _setup(broker, transactional_db, settings, default_worker):
    settings.TASK_FERRY = _ferry(broker)


def _deliveries_of(task_id: str, count: int = 1) -> list[dict]:
    return wait_until(
        lambda: len(found := [d for d in deliveries() if d["message_id"] == task_id]) >= count and found,
        TIMEOUT,
        f"{count} deliveries of message {task_id} (log: {deliveries()})",
    )


def test_the_job_runs_as_a_message_with_cores_task_id():
    job = JobHandler.create_and_start(None, "ferry_conformance", steps=2)
    job = wait_for_state(job.pk, "finished", TIMEOUT)
    [delivery] = _deliveries_of(job.executor_task_id)
    assert delivery == {
        "message_id": job.executor_task_id,
        "queue": DEFAULT_QUEUE,
        "actor": ACTOR_NAME,
        "args": [job.pk, "ferry_conformance"],
        "outcome": "processed",
        "exception": None,
        "retries": 0,
    }


def test_a_failing_job_is_a_successful_message():
    """The runner records the job's exception; Dramatiq sees a message that succeeded, and never retries it."""
    job = JobHandler.create_and_start(None, "ferry_conformance", steps=1, fail_with="boom")
    job = wait_for_state(job.pk, "failed", TIMEOUT)
    assert job.error == "boom"
    [delivery] = _deliveries_of(job.executor_task_id)
    assert (delivery["exception"], delivery["retries"]) == (None, 0)
    time.sleep(GRACE)
    assert len([d for d in deliveries() if d["message_id"] == job.executor_task_id]) == 1
    job.refresh_from_db()
    assert (job.body_runs, job.attempts) == (1, 1)


def test_a_cancelled_pending_job_is_delivered_and_never_runs():
    """Dramatiq cannot drop a queued message (no revoke): the cancelled job's message still reaches
    the worker, and core's claim finds the job cancelled, so the body never starts."""
    blocker = JobHandler.create_and_start(None, "ferry_conformance", steps=20, step_sleep=0.1)
    wait_for_state(blocker.pk, "started", TIMEOUT)
    queued = JobHandler.create_and_start(None, "ferry_conformance", steps=1)
    JobHandler.cancel(None, queued.pk)
    wait_for_state(blocker.pk, "finished", TIMEOUT)
    [delivery] = _deliveries_of(queued.executor_task_id)
    assert (delivery["outcome"], delivery["exception"]) == ("processed", None)
    queued.refresh_from_db()
    assert (queued.state, queued.body_runs, queued.attempts, queued.started_at) == ("cancelled", 0, 0, None)


def test_a_worker_without_queues_consumes_the_queues_task_ferry_knows(broker, ferry_child_env):
    """No ``--queues``: the worker consumes ``DEFAULT_QUEUE`` and every ``JobType.queue`` (here the
    routed type's queue, which the module's worker does not consume), and no other queue."""
    adhoc = JobHandler.create_and_start(None, "ferry_conformance", steps=1, queue=f"{PREFIX}_adhoc")
    with dramatiq_worker(env=ferry_child_env):
        routed = JobHandler.create_and_start(None, "ferry_dramatiq_routed", steps=1)
        routed = wait_for_state(routed.pk, "finished", TIMEOUT)
        assert _deliveries_of(routed.executor_task_id)[0]["queue"] == ROUTED_QUEUE
        time.sleep(GRACE)
    assert routed.queue == ROUTED_QUEUE
    adhoc.refresh_from_db()
    assert (adhoc.state, adhoc.body_runs) == ("pending", 0)


def test_a_queue_listed_with_queues_is_consumed(broker, ferry_child_env):
    """``--queues`` names a queue no actor is bound to and no job type uses: it is consumed all the same."""
    adhoc = JobHandler.create_and_start(None, "ferry_conformance", steps=1, queue=f"{PREFIX}_adhoc")
    with dramatiq_worker(queues=[f"{PREFIX}_adhoc"], env=ferry_child_env):
        wait_for_state(adhoc.pk, "finished", TIMEOUT)
        # The log is written just after the job ends; stopping the worker first would lose it.
        assert _deliveries_of(adhoc.executor_task_id)[0]["queue"] == f"{PREFIX}_adhoc"
