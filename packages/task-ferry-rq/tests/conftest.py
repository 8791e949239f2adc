"""Fixtures: the Redis database of these tests (9, flushed at the start and end of the
run) and a clean slate of RQ jobs around every test.

Between tests only the jobs are dropped, not the whole database: a worker that
outlives one test (the conformance class keeps one for all its tests) must keep
its registration and its scheduler's locks."""

from __future__ import annotations

import pytest
import redis
from django.conf import settings
from ferry_rq_testproject.support import client, purge

pytest_plugins = ["task_ferry.testing.fixtures"]


@pytest.fixture(scope="session")
def redis_db9():
    """A client on ``settings.REDIS_URL`` (database 9); no other database is touched."""
    conn = client()
    try:
        conn.ping()
    except redis.ConnectionError as exc:
        pytest.fail(
            f"Redis is not reachable at {settings.REDIS_URL} ({exc}). Start it with "
            "`redis-server --daemonize yes --port 6379 --save '' --appendonly no`, or point "
            "FERRY_RQ_REDIS_URL at a database these tests may flush."
        )
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


@pytest.fixture(autouse=True)
def _clean_rq(redis_db9):
    purge(redis_db9)
    yield
    purge(redis_db9)
