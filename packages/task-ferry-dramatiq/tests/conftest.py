"""Fixtures: the two brokers (session-wide) and their cleaning.

Redis: database 7 only, flushed at the start and the end of the run. RabbitMQ: the
default vhost; every queue of the run is named ``ferry_dramatiq_<run id>_...`` and
deleted at the end (with its ``.DQ`` / ``.XQ`` companions), as are queues left by
runs whose process is gone. Between tests the queues are purged, not deleted: a
worker that outlives one test (the conformance classes keep one per class) must keep
consuming them."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from django.conf import settings
from ferry_dramatiq_testproject.brokers import DELIVERIES_KEY
from ferry_dramatiq_testproject.support import KNOWN_QUEUES, RABBITMQ, REDIS, BrokerUnderTest

from task_ferry.testing.services import flushed_redis, pid_alive, require_rabbitmq

pytest_plugins = ["task_ferry.testing.fixtures"]


@pytest.fixture(scope="session")
def redis_db7():
    """A client on the Redis database of these tests (``settings.REDIS_BROKER_URL``): the
    Redis broker and the delivery log. Flushed at the start and end of the run."""
    yield from flushed_redis(settings.REDIS_BROKER_URL, "FERRY_DRAMATIQ_REDIS_URL")


@pytest.fixture(scope="session")
def redis_broker(redis_db7) -> BrokerUnderTest:
    return REDIS


def _delete_queues(names) -> None:
    import pika

    with pika.BlockingConnection(pika.URLParameters(settings.AMQP_BROKER_URL)) as conn:
        for name in names:
            channel = conn.channel()
            try:
                channel.queue_delete(name)  # a missing queue is not an error for queue.delete
            finally:
                if channel.is_open:
                    channel.close()


def _stale_queues() -> list[str]:
    """Queues of earlier runs of this suite whose process is gone (needs rabbitmqctl; else none)."""
    if shutil.which("rabbitmqctl") is None:
        return []
    done = subprocess.run(["rabbitmqctl", "-q", "list_queues", "name"], capture_output=True, text=True, timeout=60)
    stale = []
    for name in done.stdout.split():
        run_id = name.removeprefix("ferry_dramatiq_").split("_", 1)[0]
        ours = name.startswith("ferry_dramatiq_") and run_id.isdigit() and run_id != settings.RUN_ID
        if ours and not pid_alive(int(run_id)):
            stale.append(name)
    return stale


@pytest.fixture(scope="session")
def rabbitmq_broker(redis_db7) -> BrokerUnderTest:
    """RabbitMQ's default vhost; this run's queues are deleted at the end."""
    require_rabbitmq()
    _delete_queues(_stale_queues())
    yield RABBITMQ
    RABBITMQ.broker.close()
    _delete_queues(f"{q}{suffix}" for q in KNOWN_QUEUES for suffix in ("", ".DQ", ".XQ"))


@pytest.fixture(scope="module", params=["redis", "rabbitmq"])
def broker(request) -> BrokerUnderTest:
    """Each broker in turn (module-wide, so a module's tests run broker by broker)."""
    return request.getfixturevalue(f"{request.param}_broker")


@pytest.fixture(autouse=True)
def _clean_brokers(request, redis_db7):
    """Empty the delivery log and the queues of the brokers this test uses, before and after."""
    used = [b for b, name in ((REDIS, "redis_broker"), (RABBITMQ, "rabbitmq_broker")) if name in request.fixturenames]
    if "broker" in request.fixturenames:
        used.append(request.getfixturevalue("broker"))
    for b in used:
        b.purge()
    redis_db7.delete(DELIVERIES_KEY)
    yield
    for b in used:
        b.purge()
