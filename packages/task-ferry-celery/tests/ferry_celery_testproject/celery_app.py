"""The test project's Celery apps, one per broker, configured as a project would.

Workers are started with ``celery -A ferry_celery_testproject.celery_app:redis_app``
(or ``:rabbitmq_app``). Both apps declare priority support the way the README tells
users to: kombu's Redis transport with ten priority lists, RabbitMQ queues with
``x-max-priority``; and one prefetched task per process, so a queued job cannot
jump the line by sitting in a worker's buffer.

Every delivery of ``task_ferry.run_job`` to a worker is recorded (``task_prerun``)
in the Redis list :data:`DELIVERIES_KEY`, so tests can tell a message that was
delivered and skipped by the runner from one that never arrived; the state Celery
gives each task at its end (``task_postrun``) goes to the list :data:`STATES_KEY`.
"""

import json
import os
import time

import redis
from celery import Celery
from celery.signals import task_postrun, task_prerun
from django.conf import settings

from task_ferry_celery.tasks import TASK_NAME

DELIVERIES_KEY = "ferry_celery_test:deliveries"
STATES_KEY = "ferry_celery_test:states"

COMMON = {
    "worker_prefetch_multiplier": 1,
    "broker_connection_retry_on_startup": True,
    "worker_hijack_root_logger": False,
}

redis_app = Celery("ferry_celery_redis", set_as_current=False)
redis_app.conf.update(
    broker_url=settings.REDIS_BROKER_URL,
    broker_transport_options={"priority_steps": list(range(10))},
    **COMMON,
)

rabbitmq_app = Celery("ferry_celery_rabbitmq", set_as_current=False)
rabbitmq_app.conf.update(broker_url=settings.AMQP_BROKER_URL, task_queue_max_priority=10, **COMMON)


def recorder() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_BROKER_URL, socket_timeout=2, socket_connect_timeout=2)


@task_prerun.connect
def _record_delivery(sender=None, task_id=None, args=None, **kwargs) -> None:
    if getattr(sender, "name", None) != TASK_NAME:
        return
    delivery = sender.request.delivery_info or {}
    entry = {
        "task_id": task_id,
        "job_id": args[0],
        "pid": os.getpid(),
        "at": time.time(),
        "queue": delivery.get("routing_key"),
        "redelivered": bool(delivery.get("redelivered")),
    }
    recorder().rpush(DELIVERIES_KEY, json.dumps(entry))


@task_postrun.connect
def _record_state(sender=None, task_id=None, state=None, **kwargs) -> None:
    if getattr(sender, "name", None) == TASK_NAME:
        recorder().rpush(STATES_KEY, json.dumps({"task_id": task_id, "state": state}))


def deliveries() -> list[dict]:
    """Every recorded delivery, oldest first."""
    return [json.loads(raw) for raw in recorder().lrange(DELIVERIES_KEY, 0, -1)]


def celery_states(task_id: str) -> list[str]:
    """The state Celery gave each finished delivery of the task (``SUCCESS``, ``FAILURE``, ...), oldest first."""
    entries = (json.loads(raw) for raw in recorder().lrange(STATES_KEY, 0, -1))
    return [e["state"] for e in entries if e["task_id"] == task_id]
