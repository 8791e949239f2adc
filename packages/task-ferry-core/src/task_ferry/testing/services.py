"""Real services for plugin test suites: a Redis database of the suite's own, and a
clear failure (naming the command that starts it) when a service is down.

Plugins' suites talk to real brokers and stores; each owns one Redis database
number, flushed when it starts and when it ends, so suites never touch each
other's keys or anyone else's. ``redis`` is imported only when these are used:
core itself does not depend on it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest

REDIS_START = "redis-server --daemonize yes --port 6379 --save '' --appendonly no"
RABBITMQ_START = "rabbitmq-server -detached"


def reachable(port: int, host: str = "127.0.0.1", timeout: float = 2.0) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def require_rabbitmq(port: int = 5672) -> None:
    """Fail the test (not skip: CI has RabbitMQ) when RabbitMQ is not on ``127.0.0.1:port``."""
    if not reachable(port):
        pytest.fail(f"RabbitMQ is not reachable on 127.0.0.1:{port}. Start it with `{RABBITMQ_START}`.")


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (one of another user's counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def flushed_redis(url: str, env_var: str, socket_timeout: float = 5.0) -> Iterator[Any]:
    """Yield a client on the Redis database ``url`` names, flushed before and after; for a
    fixture: ``yield from flushed_redis(settings.REDIS_URL, "FERRY_RQ_REDIS_URL")``.

    Fails the test when Redis is down, saying how to start it and which environment
    variable (``env_var``) points the suite at another database it may flush."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=socket_timeout)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(
            f"Redis is not reachable at {url} ({exc}). Start it with `{REDIS_START}`, "
            f"or point {env_var} at a database these tests may flush."
        )
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()
