"""Fixtures: the two brokers (session-wide), the delivery log, RabbitMQ's vhost.

Brokers are shared by a whole run and cleaned between tests by purging the
queues this suite uses, not by flushing: a worker that outlives one test (the
conformance classes keep one per class) must keep its queues and bindings."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import redis
from django.conf import settings
from ferry_celery_testproject.celery_app import DELIVERIES_KEY, STATES_KEY
from ferry_celery_testproject.support import RABBITMQ, REDIS, Broker, reachable

pytest_plugins = ["task_ferry.testing.fixtures"]


@pytest.fixture(scope="session")
def redis_db11():
    """A client on the Redis database of these tests (``settings.REDIS_BROKER_URL``, database
    11): the Redis broker and the delivery log. Flushed at the start and end of the run; no
    other database is touched."""
    client = redis.Redis.from_url(settings.REDIS_BROKER_URL, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(
            f"Redis is not reachable at {settings.REDIS_BROKER_URL} ({exc}). Start it with "
            "`redis-server --daemonize yes --port 6379 --save '' --appendonly no`, or point "
            "FERRY_CELERY_REDIS_URL at a database these tests may flush."
        )
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def redis_broker(redis_db11) -> Broker:
    yield REDIS
    REDIS.app.pool.force_close_all()


def _rabbitmqctl(*args: str) -> str:
    done = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60)
    if done.returncode:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr or done.stdout}")
    return done.stdout


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def rabbitmq_broker(redis_db11) -> Broker:
    """RabbitMQ, in a vhost of this run's own (``settings.AMQP_VHOST``) deleted at the end,
    so nothing another user of the server has is touched. Vhosts of earlier runs whose
    process is gone are deleted first."""
    if not reachable(5672):
        pytest.fail(
            "RabbitMQ is not reachable on 127.0.0.1:5672. Start it with `rabbitmq-server -detached` "
            "(or `service rabbitmq-server start`)."
        )
    if shutil.which("rabbitmqctl") is None:
        pytest.fail("rabbitmqctl is not on PATH: these tests create a RabbitMQ vhost of their own with it.")
    for vhost in _rabbitmqctl("list_vhosts").split():
        pid = vhost.removeprefix("ferry_celery_")
        if vhost != pid and pid.isdigit() and vhost != settings.AMQP_VHOST and not _pid_alive(int(pid)):
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
