"""A worker lost mid-job (RabbitMQ, which requeues a dead consumer's unacknowledged
messages at once; Redis does the same after its ``visibility_timeout``, an hour by default)."""

from __future__ import annotations

import os
import signal

import pytest
from django.conf import settings as django_settings
from ferry_celery_testproject.celery_app import celery_states, deliveries
from ferry_celery_testproject.support import celery_worker

from task_ferry.conf import get_executor
from task_ferry.testing.base import create_pending_job, dispatch_of, wait_until
from task_ferry.testing.models import ConformanceJob

QUEUE = "ferry_celery_lost"


@pytest.mark.integration
def test_redelivery_after_the_worker_died_does_not_run_the_job_again(rabbitmq_broker, transactional_db, settings):
    """``acks_late``: the message of a job whose worker died is delivered again. The job was
    claimed, so the new delivery skips it: the body ran once, and the job stays ``started``
    (a later reaper deals with it)."""
    settings.TASK_FERRY = {**django_settings.TASK_FERRY, "EXECUTOR": rabbitmq_broker.executor_setting()}
    job = create_pending_job(steps=100, step_sleep=0.1, queue=QUEUE)
    with celery_worker(rabbitmq_broker, [QUEUE]) as first:
        get_executor().submit(dispatch_of(job))
        wait_until(lambda: ConformanceJob._base_manager.get(pk=job.pk).body_runs == 1, 30, "the body to start")
        os.killpg(first.pid, signal.SIGKILL)  # the worker and its pool, at once
        first.wait()

    with celery_worker(rabbitmq_broker, [QUEUE]):
        redelivered = wait_until(lambda: len(d := deliveries()) == 2 and d[1], 30, "the message to be delivered again")
        assert redelivered["redelivered"] is True
        assert redelivered["task_id"] == job.executor_task_id
        # Returned (the runner skipped the claimed job) before the worker is stopped.
        assert wait_until(lambda: celery_states(job.executor_task_id), 30, "the redelivery to return") == ["SUCCESS"]
    job.refresh_from_db()
    assert (job.state, job.body_runs, job.attempts) == ("started", 1, 1)
