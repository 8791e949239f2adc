from __future__ import annotations

import pytest
from django.conf import settings
from ferry_redis_testproject.support import TEST_PREFIX, RedisServer

from task_ferry import runner
from task_ferry.testing.services import flushed_redis
from task_ferry_redis.store import RedisProgressStore

pytest_plugins = ["task_ferry.testing.fixtures"]


@pytest.fixture
def redis_db13():
    """A client on the machine's Redis, database 13 (``FERRY_REDIS_TEST_URL``), emptied
    before and after the test. No other database is touched."""
    yield from flushed_redis(settings.REDIS_TEST_URL, "FERRY_REDIS_TEST_URL", socket_timeout=2)


@pytest.fixture
def make_store(redis_db13):
    """``make_store(**OPTIONS)``: a store on the test database with the test prefix,
    closed after the test."""
    stores: list[RedisProgressStore] = []

    def make(**options) -> RedisProgressStore:
        if "CLIENT" not in options:
            options.setdefault("URL", settings.REDIS_TEST_URL)
        options.setdefault("KEY_PREFIX", TEST_PREFIX)
        store = RedisProgressStore(options)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def fresh_store_health(monkeypatch):
    """Core logs an outage once per store class per process; give this test its own
    record so an outage left open by an earlier test does not silence this one's."""
    health = type(runner.store_health)()
    monkeypatch.setattr(runner, "store_health", health)
    return health


@pytest.fixture
def start_redis():
    """``start_redis(**kwargs)``: a private redis-server (see ``RedisServer``), stopped after the test."""
    servers: list[RedisServer] = []

    def start(**kwargs) -> RedisServer:
        try:
            server = RedisServer(**kwargs)
        except RuntimeError as exc:
            pytest.fail(str(exc))
        servers.append(server)
        server.start()
        return server

    yield start
    for server in reversed(servers):
        server.stop()


@pytest.fixture
def redis_server(start_redis):
    """A private redis-server on a free port, which the test may kill and restart."""
    return start_redis()
