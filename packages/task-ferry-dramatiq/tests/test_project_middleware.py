"""The project's own Dramatiq middleware settings do not reach task-ferry's jobs: a broker-wide
``AgeLimit`` and ``TimeLimit`` that drop or interrupt the project's other actors leave the
jobs alone (see :mod:`task_ferry_dramatiq.actor`).

A real Redis broker (database 7, a namespace of its own) and a real ``dramatiq.Worker`` in
this process, so the test can declare a control actor next to the job's."""

from __future__ import annotations

import time

import dramatiq
import pytest
from django.conf import settings as django_settings
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import AgeLimit, Retries, TimeLimit, TimeLimitExceeded
from ferry_dramatiq_testproject.support import DEFAULT_QUEUE, PREFIX

from task_ferry.handler import JobHandler
from task_ferry.testing.base import wait_until
from task_ferry.testing.executor import wait_for_state

pytestmark = pytest.mark.integration


@pytest.mark.django_db(transaction=True)
def test_the_projects_age_and_time_limits_leave_jobs_alone(redis_broker, settings):
    middleware = [AgeLimit(max_age=100), TimeLimit(time_limit=300, interval=50), Retries(max_retries=0)]
    broker = RedisBroker(url=django_settings.REDIS_BROKER_URL, namespace=f"{PREFIX}-limits", middleware=middleware)
    settings.TASK_FERRY = {**settings.TASK_FERRY, "EXECUTOR": {"BACKEND": "dramatiq", "OPTIONS": {"BROKER": broker}}}
    control: dict[str, str] = {}

    @dramatiq.actor(broker=broker, queue_name=DEFAULT_QUEUE, actor_name="ferry_control_slow")
    def slow(tag: str) -> None:
        control[tag] = "ran"
        try:
            time.sleep(1.5)
            control[tag] = "finished"
        except TimeLimitExceeded:
            control[tag] = "interrupted"
            raise

    # Queued, then left to age past the broker-wide max_age of 100 ms before a worker starts.
    slow.send("aged")
    aged_job = JobHandler.create_and_start(None, "ferry_conformance", steps=1)
    time.sleep(0.3)
    broker.emit_after("process_boot")  # starts TimeLimit's watchdog, as a worker process does
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        aged_job = wait_for_state(aged_job.pk, "finished", 30)
        # Outlives the broker-wide time limit of 300 ms.
        long_job = JobHandler.create_and_start(None, "ferry_conformance", steps=10, step_sleep=0.15)
        slow.send("timed")
        long_job = wait_for_state(long_job.pk, "finished", 30)
        wait_until(lambda: control.get("timed") in ("interrupted", "finished"), 10, "the control actor to end")
    finally:
        worker.stop()
        broker.close()
    assert "aged" not in control, "the control message was not dropped for its age: the test proves nothing"
    assert control["timed"] == "interrupted", "the control actor was not interrupted: the test proves nothing"
    assert (aged_job.body_runs, long_job.body_runs, long_job.progress_percentage) == (1, 1, 100)
