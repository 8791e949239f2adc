"""Fixtures: the two brokers (session-wide), the delivery log, RabbitMQ's vhost.

Brokers are shared by a whole run and cleaned between tests by purging the
queues this suite uses, not by flushing: a worker that outlives one test (the
conformance classes keep one per class) must keep its queues and bindings."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from django.conf import settings
from ferry_celery_testproject.celery_app import DELIVERIES_KEY, STATES_KEY
from ferry_celery_testproject.support import RABBITMQ, REDIS, Broker

from task_ferry.testing.services import flushed_redis, pid_alive, require_rabbitmq

pytest_plugins = ["task_ferry.testing.fixtures"]


@pytest.fixture(scope="session")
def redis_db11():
    """A client on the Redis database of these tests (``settings.REDIS_BROKER_URL``, database
    11): the Redis broker and the delivery log. Flushed at the start and end of the run; no
    other database is touched."""
    yield from flushed_redis(settings.REDIS_BROKER_URL, "FERRY_CELERY_REDIS_URL")


@pytest.fixture(scope="session")
def redis_broker(redis_db11) -> Broker:
    yield REDIS
    REDIS.app.pool.force_close_all()


def _rabbitmqctl(*args: str) -> str:
    done = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60)
    if done.returncode:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr or done.stdout}")
    return done.stdout


@pytest.fixture(scope="session")
def rabbitmq_broker(redis_db11) -> Broker:
    """RabbitMQ, in a vhost of this run's own (``settings.AMQP_VHOST``) deleted at the end,
    so nothing another user of the server has is touched. Vhosts of earlier runs whose
    process is gone are deleted first."""
    require_rabbitmq()
    if shutil.which("rabbitmqctl") is None:
        pytest.fail("rabbitmqctl is not on PATH: these tests create a RabbitMQ vhost of their own with it.")
    for vhost in _rabbitmqctl("list_vhosts").split():
        pid = vhost.removeprefix("ferry_celery_")
        if vhost != pid and pid.isdigit() and vhost != settings.AMQP_VHOST and not pid_alive(int(pid)):
            _rabbitmqctl("delete_vhost", vhost)
    _rabbitmqctl("add_vhost", settings.AMQP_VHOST)
    _rabbitmqctl("set_permissions", "-p", settings.AMQP_VHOST, "guest", ".*", ".*", ".*")
    yield RABBITMQ
    RABBITMQ.app.pool.force_close_all()
    _rabbitmqctl("delete_vhost", settings.AMQP_VHOST)


@pytest.fixture(scope="module", params=["redis", "rabbitmq"])
def broker(request) -> Broker:
    """Each broker in turn (module-wide, so a module's tests run broker by broker)."""
    return request.getfixturevalue(f"{request.param}_broker")


@pytest.fixture(autouse=True)
def _clean_brokers(request, redis_db11):
    """Empty the delivery log and the queues of the brokers this test uses, before and after."""
    used = [b for b, name in ((REDIS, "redis_broker"), (RABBITMQ, "rabbitmq_broker")) if name in request.fixturenames]
    if "broker" in request.fixturenames:
        used.append(request.getfixturevalue("broker"))
    for b in used:
        b.purge()
    redis_db11.delete(DELIVERIES_KEY, STATES_KEY)
    yield
    for b in used:
        b.purge()
