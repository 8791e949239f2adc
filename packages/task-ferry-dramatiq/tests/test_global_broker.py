"""A project that configures Dramatiq globally (``dramatiq.set_broker``) and leaves ``BROKER``
unset; its workers load task-ferry's actor next to their own modules:

    dramatiq ferry_dramatiq_testproject.global_redis task_ferry_dramatiq.worker --queues ...

Redis only: this is about how the broker is found, not about the broker."""

from __future__ import annotations

import dramatiq
import pytest
from ferry_dramatiq_testproject.brokers import deliveries
from ferry_dramatiq_testproject.support import DEFAULT_QUEUE, dramatiq_worker

from task_ferry.conf import get_executor
from task_ferry.handler import JobHandler
from task_ferry.testing.base import wait_until
from task_ferry.testing.executor import wait_for_state
from task_ferry.testing.subprocess import child_env

pytestmark = pytest.mark.integration


@pytest.mark.django_db(transaction=True)
def test_global_broker_and_a_worker_of_the_projects_own_modules(redis_broker, settings, monkeypatch):
    # What ferry_dramatiq_testproject.global_redis does in the worker, done here for the sending side.
    monkeypatch.setattr(dramatiq.broker, "global_broker", redis_broker.broker)
    settings.TASK_FERRY = {**settings.TASK_FERRY, "EXECUTOR": "dramatiq"}
    assert get_executor().broker is redis_broker.broker
    modules = ("ferry_dramatiq_testproject.global_redis", "task_ferry_dramatiq.worker")
    with dramatiq_worker(*modules, queues=[DEFAULT_QUEUE], env=child_env()):
        job = JobHandler.create_and_start(None, "ferry_conformance", steps=2)
        job = wait_for_state(job.pk, "finished", 30.0)
        wait_until(lambda: any(d["message_id"] == job.executor_task_id for d in deliveries()), 10.0, "the delivery")
    assert job.body_runs == 1
