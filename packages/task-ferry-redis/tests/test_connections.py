"""Ways of reaching Redis, each against a private redis-server: unix socket, TLS
(``rediss://``), ACL user and password, and Sentinel through ``CLIENT``."""

from __future__ import annotations

import threading

import pytest
import redis
from redis.sentinel import Sentinel

from task_ferry.protocols import Snapshot
from task_ferry.states import JOB_FINISHED, JOB_STARTED
from task_ferry_redis.store import RedisProgressStore

pytestmark = pytest.mark.integration


def _exercise(store: RedisProgressStore) -> None:
    """Write, cancel, read back and clear one job, and see the channel work."""
    try:
        assert store.write(Snapshot(1, JOB_STARTED, 40, "over the wire", 1.0)) is False
        store.request_cancel(1)
        assert store.write(Snapshot(1, JOB_STARTED, 50, "over the wire", 2.0)) is True
        assert store.read_many([1]) == {1: Snapshot(1, JOB_STARTED, 50, "over the wire", 2.0, True)}
        seen: list[Snapshot] = []
        first = threading.Event()

        def follow():
            for snap in store.subscribe(1, 5.0):
                seen.append(snap)
                first.set()

        thread = threading.Thread(target=follow, daemon=True)
        thread.start()
        assert first.wait(5)
        store.clear(1, Snapshot(1, JOB_FINISHED, 100, "done", 3.0))
        thread.join(5)
        assert [s.state for s in seen] == [JOB_STARTED, JOB_FINISHED]
        assert store.read_many([1]) == {}
    finally:
        store.close()


def test_unix_socket(redis_server):
    url = f"unix://{redis_server.socket_path}?db=2"
    _exercise(RedisProgressStore({"URL": url}))
    store = RedisProgressStore({"URL": url})
    store.write(Snapshot(2, JOB_STARTED, 5, "", 1.0))
    store.close()
    direct = redis.Redis(unix_socket_path=str(redis_server.socket_path), db=2)
    assert direct.keys() == [b"task_ferry:job:2:progress"]
    direct.close()


def test_tls(start_redis):
    server = start_redis(tls=True)
    assert server.url.startswith("rediss://")
    _exercise(RedisProgressStore({"URL": server.url, "CONNECTION_KWARGS": {"ssl_ca_certs": str(server.ca_file)}}))
    # Certificates are verified: without the CA the handshake fails, quickly.
    unverified = RedisProgressStore({"URL": server.url})
    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        unverified.write(Snapshot(1, JOB_STARTED, 0, "", 1.0))
    unverified.close()


def test_acl_username_and_password(redis_server):
    admin = redis.Redis(port=redis_server.port)
    admin.acl_setuser("ferry", enabled=True, passwords=["+s3cret"], keys=["task_ferry:*"], channels=["task_ferry:*"],
                      commands=["+@all"])  # fmt: skip
    admin.close()
    url = redis_server.url
    _exercise(RedisProgressStore({"URL": url, "USERNAME": "ferry", "PASSWORD": "s3cret"}))
    _exercise(RedisProgressStore({"URL": url.replace("redis://", "redis://ferry:s3cret@")}))
    wrong = RedisProgressStore({"URL": url, "USERNAME": "ferry", "PASSWORD": "nope"})
    with pytest.raises(redis.AuthenticationError):
        wrong.write(Snapshot(1, JOB_STARTED, 0, "", 1.0))
    wrong.close()
    # The ACL confines the user to the default prefix; another prefix is refused by the server.
    elsewhere = RedisProgressStore({"URL": url, "USERNAME": "ferry", "PASSWORD": "s3cret", "KEY_PREFIX": "other:"})
    with pytest.raises(redis.ResponseError, match="permission"):
        elsewhere.write(Snapshot(1, JOB_STARTED, 0, "", 1.0))
    elsewhere.close()


def test_sentinel_master_as_client(start_redis):
    master = start_redis()
    sentinel_server = start_redis(sentinel_for=master)
    sentinel = Sentinel([("127.0.0.1", sentinel_server.port)], socket_timeout=1)
    client = sentinel.master_for("mymaster", socket_timeout=1, socket_connect_timeout=1)
    _exercise(RedisProgressStore({"CLIENT": client}))
    assert client.ping()  # the caller's client stays open
    client.close()
