"""The executor against real ``celery worker`` processes, on Redis and on RabbitMQ:
what the kit does not look at (Celery's task id and state, routing by ``JobType.queue``
/ ``DEFAULT_QUEUE`` / Celery's default, revoke, kill with escalation, deliveries of
a message twice).

One worker per broker for the module (prefork, concurrency 2, queue ``default``);
tests that need another worker start their own."""

from __future__ import annotations

import time

import pytest
from django.conf import settings as django_settings
from ferry_celery_testproject.celery_app import celery_states, deliveries
from ferry_celery_testproject.celeryapp.job_types import ROUTED_QUEUE
from ferry_celery_testproject.celeryapp.models import StubbornJob
from ferry_celery_testproject.support import celery_worker

from task_ferry.conf import get_executor
from task_ferry.handler import JobHandler
from task_ferry.protocols import Dispatch
from task_ferry.testing.base import create_pending_job, dispatch_of, wait_until
from task_ferry.testing.executor import wait_for_state
from task_ferry.testing.models import ConformanceJob
from task_ferry.testing.subprocess import child_env

pytestmark = pytest.mark.integration

TIMEOUT = 30.0
KILL_GRACE = 2.0


def _ferry(broker) -> dict:
    return {**django_settings.TASK_FERRY, "EXECUTOR": broker.executor_setting(KILL_GRACE=KILL_GRACE)}


@pytest.fixture(scope="module")
def default_worker(broker, django_db_setup):
    with celery_worker(broker, ["default"], concurrency=2, env=child_env(settings={"TASK_FERRY": _ferry(broker)})):
        yield


@pytest.fixture(autouse=True)
def _setup(broker, transactional_db, settings, default_worker):
    settings.TASK_FERRY = _ferry(broker)


def _deliveries_of(task_id: str, count: int) -> list[dict]:
    return wait_until(
        lambda: len(found := [d for d in deliveries() if d["task_id"] == task_id]) >= count and found,
        TIMEOUT,
        f"{count} deliveries of task {task_id} (log: {deliveries()})",
    )


def _states_of(task_id: str, count: int) -> list[str]:
    return wait_until(
        lambda: len(states := celery_states(task_id)) >= count and states,
        TIMEOUT,
        f"Celery to finish {count} deliveries of task {task_id}",
    )


def test_the_job_runs_under_cores_task_id():
    job = JobHandler.create_and_start(None, "ferry_conformance", steps=2)
    job = wait_for_state(job.pk, "finished", TIMEOUT)
    [delivery] = _deliveries_of(job.executor_task_id, 1)
    assert (delivery["job_id"], delivery["queue"], delivery["redelivered"]) == (job.pk, "default", False)
    assert _states_of(job.executor_task_id, 1) == ["SUCCESS"]


def test_a_failing_job_is_a_successful_celery_task():
    """The runner records the job's exception; Celery is not told about it (no retry, no
    failure event for the job's own error)."""
    job = JobHandler.create_and_start(None, "ferry_conformance", steps=1, fail_with="boom")
    job = wait_for_state(job.pk, "failed", TIMEOUT)
    assert job.error == "boom"
    assert _states_of(job.executor_task_id, 1) == ["SUCCESS"]


def test_routing_by_job_type_then_default_queue_then_celerys_default(broker, settings):
    """``JobType.queue`` first, then ``TASK_FERRY["DEFAULT_QUEUE"]``, then (no queue at all) Celery's
    ``task_default_queue``. The module's worker consumes ``default`` only, so nothing here runs
    until a worker on those queues starts."""
    celery_default = broker.app.conf.task_default_queue
    by_type = JobHandler.create_and_start(None, "ferry_celery_routed", steps=1)
    settings.TASK_FERRY = {**settings.TASK_FERRY, "DEFAULT_QUEUE": ROUTED_QUEUE}
    by_setting = JobHandler.create_and_start(None, "ferry_conformance", steps=1)
    unrouted = create_pending_job(steps=1)
    get_executor().submit(
        Dispatch(job_id=unrouted.pk, task_id=unrouted.executor_task_id, job_type=unrouted.type, queue="")
    )

    time.sleep(1.5)  # the module's worker could (wrongly) take them now
    states = set(
        ConformanceJob._base_manager.filter(pk__in=[by_type.pk, by_setting.pk, unrouted.pk]).values_list(
            "state", flat=True
        )
    )
    assert states == {"pending"}
    assert (by_type.queue, by_setting.queue) == (ROUTED_QUEUE, ROUTED_QUEUE)

    with celery_worker(broker, [ROUTED_QUEUE, celery_default], env=child_env(settings={"TASK_FERRY": _ferry(broker)})):
        for job in (by_type, by_setting, unrouted):
            wait_for_state(job.pk, "finished", TIMEOUT)
    queues = {d["job_id"]: d["queue"] for d in deliveries()}
    assert queues == {by_type.pk: ROUTED_QUEUE, by_setting.pk: ROUTED_QUEUE, unrouted.pk: celery_default}


def test_a_cancelled_queued_job_is_dropped_by_the_worker(broker):
    """Cancelling a job that waits in the queue revokes its task: the worker discards the
    message without running the task at all (no delivery to the runner)."""
    blockers = [JobHandler.create_and_start(None, "ferry_conformance", steps=20, step_sleep=0.1) for _ in range(2)]
    for blocker in blockers:
        wait_for_state(blocker.pk, "started", TIMEOUT)
    queued = JobHandler.create_and_start(None, "ferry_conformance", steps=1)
    JobHandler.cancel(None, queued.pk)
    for blocker in blockers:
        wait_for_state(blocker.pk, "finished", TIMEOUT)
    time.sleep(1.5)  # the worker takes the next message as soon as a process is free

    queued.refresh_from_db()
    assert (queued.state, queued.body_runs, queued.attempts) == ("cancelled", 0, 0)
    assert [d for d in deliveries() if d["task_id"] == queued.executor_task_id] == []
    with broker.app.connection_for_read() as conn:
        channel = conn.channel()
        assert channel.basic_get("default", no_ack=True) is None, "the message was never taken from the queue"
        channel.close()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_kill_escalates_to_sigkill_for_a_job_that_ignores_sigterm_and_cancel():
    """Cancel first (the row says ``cancelled`` at once), then kill: the job ignores both the
    cancel and SIGTERM, keeps beating through the grace period, and stops at SIGKILL."""
    job = JobHandler.create_and_start(None, "ferry_celery_stubborn", seconds=60)
    job = wait_until(
        lambda: (j := StubbornJob._base_manager.get(pk=job.pk)).beats >= 3 and j, TIMEOUT, "the stubborn job to beat"
    )
    JobHandler.cancel(None, job.pk)
    killed_at = time.monotonic()
    get_executor().kill(job.pk, job.executor_task_id)

    time.sleep(KILL_GRACE / 2)
    beats_mid_grace = StubbornJob._base_manager.get(pk=job.pk).beats
    assert _alive(job.pid), "SIGTERM stopped a job that ignores it: the test job is not stubborn"
    assert beats_mid_grace > job.beats

    # Stopped: no beat for a whole second.
    last = [beats_mid_grace, time.monotonic()]

    def quiet() -> bool:
        beats = StubbornJob._base_manager.get(pk=job.pk).beats
        if beats != last[0]:
            last[:] = [beats, time.monotonic()]
        return time.monotonic() - last[1] >= 1.0

    wait_until(quiet, KILL_GRACE + 10, "the killed job to stop beating", interval=0.1)
    stopped_after = last[1] - killed_at
    assert KILL_GRACE - 0.5 <= stopped_after <= KILL_GRACE + 3.0, f"stopped {stopped_after:.1f}s after kill()"
    wait_until(lambda: not _alive(job.pid), 10, f"process {job.pid} to be gone")
    job.refresh_from_db()
    assert (job.state, job.body_runs) == ("cancelled", 1)

    # The worker replaced its process and goes on.
    after = JobHandler.create_and_start(None, "ferry_conformance", steps=1)
    wait_for_state(after.pk, "finished", TIMEOUT)


def test_a_second_delivery_while_running_and_after_the_end_does_nothing():
    """The same message twice (same task id, same args) while the job runs, on the worker's
    other process, and once more after it finished: the body runs once, the job keeps its end."""
    executor = get_executor()
    job = create_pending_job(steps=50, step_sleep=0.1)  # 5 s: time for the duplicate on a busy machine
    dispatch = dispatch_of(job)
    executor.submit(dispatch)
    wait_for_state(job.pk, "started", TIMEOUT)
    executor.submit(dispatch)
    second = _deliveries_of(job.executor_task_id, 2)[1]
    job.refresh_from_db()
    assert job.state == "started", "the second delivery must land while the first runs"
    _states_of(job.executor_task_id, 1)  # the duplicate returned (skipped) ...

    job = wait_for_state(job.pk, "finished", TIMEOUT)
    assert second["at"] < job.finished_at.timestamp()  # ... before the first finished
    assert (job.body_runs, job.attempts, job.result) == (1, 1, {"steps": 50})
    ended = (job.finished_at, job.updated_at)

    executor.submit(dispatch)
    _deliveries_of(job.executor_task_id, 3)
    assert _states_of(job.executor_task_id, 3) == ["SUCCESS"] * 3
    job.refresh_from_db()
    assert (job.state, job.body_runs, job.attempts, job.result) == ("finished", 1, 1, {"steps": 50})
    assert (job.finished_at, job.updated_at) == ended


def test_messages_of_0_1_1s_task_name_still_run(broker):
    """django-task-ferry 0.1.1 sent ``task_ferry.tasks.run_async_job(job_id)``; messages queued
    before an upgrade are run by the new worker."""
    job = create_pending_job(steps=1)
    broker.app.send_task("task_ferry.tasks.run_async_job", args=[job.pk], queue="default")
    job = wait_for_state(job.pk, "finished", TIMEOUT)
    assert job.body_runs == 1
