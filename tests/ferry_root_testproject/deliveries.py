"""Which deliveries the engines' workers have handled, recorded in the failure tests'
private Redis (``FERRY_CHAOS_REDIS_URL``, database 0): a test waits on it until both
deliveries of a job delivered twice have been handled, one run and one skipped.

Each engine records from its own completion hook (Celery's ``task_postrun``, a
Dramatiq middleware) into a list of its own; RQ needs none (its finished jobs
disappear, see ``tests/test_failures.py``)."""

from __future__ import annotations

import os

import redis

ENV = "FERRY_CHAOS_REDIS_URL"


def url(db: int = 0) -> str:
    """The private Redis's URL with database ``db``: 0 for the progress store, Celery's broker
    and these lists, 3 for RQ, 2 for Dramatiq's Redis broker."""
    base = os.environ.get(ENV)
    if not base:
        raise RuntimeError(
            f"{ENV} is not set: the failure tests set it to the redis-server they start (fixture chaos_redis), "
            f"and their workers inherit it. Run these modules only under tests/test_failures.py."
        )
    return f"{base.rsplit('/', 1)[0]}/{db}"


def client() -> redis.Redis:
    return redis.Redis.from_url(url(0), socket_timeout=2, socket_connect_timeout=2)


def record(key: str, value: object) -> None:
    """Append ``value`` to the list ``key``; silently nothing while the outage test has Redis stopped
    (nothing waits for these then)."""
    try:
        client().rpush(key, str(value))
    except redis.RedisError:
        pass


def count(key: str, value: object) -> int:
    """How many times ``value`` was recorded under ``key``."""
    return client().lrange(key, 0, -1).count(str(value).encode())
