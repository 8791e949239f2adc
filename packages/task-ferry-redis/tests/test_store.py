"""The redis store against the machine's Redis (database 13): OPTIONS, checks, the
wire format, cancel/clear, round trips per operation, and the live channel."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import redis
from django.conf import settings
from django.core.checks import Error
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection
from django.test import override_settings
from ferry_redis_testproject.redisapp.models import StepJob
from ferry_redis_testproject.support import PARKING, TEST_PREFIX, CountingConnection
from redis.connection import SSLConnection, UnixDomainSocketConnection

from task_ferry.handler import JobHandler
from task_ferry.plugins import PROGRESS_STORES
from task_ferry.protocols import ProgressStore, Snapshot
from task_ferry.runner import run_job
from task_ferry.states import JOB_CANCELLED, JOB_FINISHED, JOB_STARTED
from task_ferry_redis import __version__
from task_ferry_redis.store import OPTION_NAMES, RedisProgressStore

# ── Discovery and OPTIONS (no network) ─────────────────────────────────────────


def test_entry_point_names_the_store_and_its_distribution():
    assert PROGRESS_STORES.load("redis") is RedisProgressStore
    info = {p.name: p for p in PROGRESS_STORES.installed()}["redis"]
    assert (info.distribution, info.version) == ("task-ferry-redis", __version__)
    store = RedisProgressStore({})
    assert isinstance(store, ProgressStore)
    assert (store.supports_cross_process, store.supports_mid_transaction, store.supports_subscribe) == (
        True,
        True,
        True,
    )


def test_unknown_option_is_rejected_naming_the_accepted_ones():
    with pytest.raises(ValueError) as info:
        RedisProgressStore({"LOCATION": "redis://x", "URL": "redis://127.0.0.1"})
    assert "LOCATION" in str(info.value)
    for name in OPTION_NAMES:
        assert name in str(info.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"TIMEOUT": 0}, "TIMEOUT"),
        ({"TIMEOUT": True}, "TIMEOUT"),
        ({"SOCKET_TIMEOUT": None}, "SOCKET_TIMEOUT"),
        ({"SOCKET_CONNECT_TIMEOUT": -1}, "SOCKET_CONNECT_TIMEOUT"),
        ({"DB": -1}, "DB"),
        ({"DB": "3"}, "DB"),
        ({"KEY_PREFIX": None}, "KEY_PREFIX"),
        ({"URL": 6379}, "URL"),
        ({"CONNECTION_KWARGS": {"db": 2}}, "CONNECTION_KWARGS"),
        ({"CONNECTION_KWARGS": "ssl=1"}, "CONNECTION_KWARGS"),
        ({"CLIENT": 42}, "CLIENT"),
        ({"CLIENT": "x.y", "URL": "redis://h"}, "CLIENT"),
        ({"CLIENT": "x.y", "DB": 1}, "CLIENT"),
    ],
)
def test_bad_option_values_raise_value_error(options, message):
    with pytest.raises(ValueError, match=message):
        RedisProgressStore(options)


def test_core_passes_the_progress_cache_timeout_as_ttl():
    from task_ferry.conf import get_progress_store

    with override_settings(
        TASK_FERRY={"PROGRESS_STORE": {"BACKEND": "redis", "OPTIONS": {}}, "PROGRESS_CACHE_TIMEOUT": 77}
    ):
        store = get_progress_store()
        assert isinstance(store, RedisProgressStore)
        assert store.timeout == 77


def test_connection_settings_precedence():
    """Named OPTIONS beat the URL, the URL beats the store's defaults (1 s timeouts)."""
    plain = RedisProgressStore({}).connection_kwargs()
    assert (plain["host"], plain["port"], plain["db"]) == ("127.0.0.1", 6379, 0)
    assert (plain["socket_timeout"], plain["socket_connect_timeout"]) == (1.0, 1.0)

    from_url = RedisProgressStore(
        {"URL": "redis://u:p%40ss@cache.internal:6380/4?socket_timeout=3"}
    ).connection_kwargs()
    assert (from_url["host"], from_url["port"], from_url["db"]) == ("cache.internal", 6380, 4)
    assert (from_url["username"], from_url["password"]) == ("u", "p@ss")
    assert (from_url["socket_timeout"], from_url["socket_connect_timeout"]) == (3.0, 1.0)

    named = RedisProgressStore(
        {
            "URL": "redis://u:p@cache.internal:6380/4?socket_timeout=3",
            "DB": 7,
            "USERNAME": "ferry",
            "PASSWORD": "s3cret",
            "SOCKET_TIMEOUT": 0.5,
            "SOCKET_CONNECT_TIMEOUT": 0.25,
            "CONNECTION_KWARGS": {"max_connections": 5, "health_check_interval": 30},
        }
    ).connection_kwargs()
    assert (named["db"], named["username"], named["password"]) == (7, "ferry", "s3cret")
    assert (named["socket_timeout"], named["socket_connect_timeout"]) == (0.5, 0.25)
    assert (named["max_connections"], named["health_check_interval"]) == (5, 30)

    tls = RedisProgressStore({"URL": "rediss://cache.internal:6380/1"}).connection_kwargs()
    assert tls["connection_class"] is SSLConnection
    unix = RedisProgressStore({"URL": "unix:///run/redis/redis.sock?db=3"}).connection_kwargs()
    assert unix["connection_class"] is UnixDomainSocketConnection
    assert (unix["path"], unix["db"]) == ("/run/redis/redis.sock", 3)


# ── Checks: configuration errors, without connecting ──────────────────────────


@pytest.mark.django_db  # Django 6's model checks query the database (JSONField support)
def test_building_and_checking_the_store_never_connects():
    """Django runs checks (and builds the store) at every management command: a
    listening server must see no connection attempt."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(0.3)
        port = listener.getsockname()[1]
        store = RedisProgressStore({"URL": f"redis://127.0.0.1:{port}/0"})
        assert store.check() == []
        with override_settings(TASK_FERRY={"PROGRESS_STORE": {"BACKEND": "redis", "OPTIONS": {"URL": store.url}}}):
            call_command("check")
        with pytest.raises(TimeoutError):
            listener.accept()


def test_check_reports_an_unparsable_url_without_its_password():
    store = RedisProgressStore({"URL": "http://ferry:hunter2@cache.internal:6379/0"})
    messages = store.check()
    assert [m.id for m in messages] == ["task_ferry_redis.E001"]
    assert isinstance(messages[0], Error)
    assert "hunter2" not in messages[0].msg
    assert "http://ferry:***@cache.internal:6379/0" in messages[0].msg
    with pytest.raises(ValueError, match="not a Redis URL"):
        store.write(Snapshot(1, JOB_STARTED, 0, "", time.time()))


def test_check_reports_an_unimportable_client():
    messages = RedisProgressStore({"CLIENT": "ferry_redis_testproject.nowhere.client"}).check()
    assert [m.id for m in messages] == ["task_ferry_redis.E002"]
    assert RedisProgressStore({"CLIENT": "ferry_redis_testproject.clients.test_client"}).check() == []


@pytest.mark.django_db
def test_manage_py_check_surfaces_the_store_errors():
    bad_url = {"PROGRESS_STORE": {"BACKEND": "redis", "OPTIONS": {"URL": "127.0.0.1:6379"}}}
    with override_settings(TASK_FERRY=bad_url), pytest.raises(SystemCheckError, match=r"task_ferry_redis\.E001"):
        call_command("check")
    bad_ttl = {"PROGRESS_STORE": {"BACKEND": "redis", "OPTIONS": {"TIMEOUT": "1h"}}}
    with override_settings(TASK_FERRY=bad_ttl), pytest.raises(SystemCheckError, match=r"task_ferry\.E005.*TIMEOUT"):
        call_command("check")


# ── Behaviour on a real Redis ──────────────────────────────────────────────────


def test_write_then_read_many(make_store, redis_db13):
    store = make_store(TIMEOUT=120)
    snap = Snapshot(41, JOB_STARTED, 37, "Writing row 3 — ünïcode", 1700000000.25)
    assert store.write(snap) is False
    assert store.read_many([41, 42]) == {41: snap}
    raw = redis_db13.get(f"{TEST_PREFIX}job:41:progress")
    assert b" " not in raw.replace("Writing row 3 — ünïcode".encode(), b"")  # compact JSON
    assert json.loads(raw) == {
        "state": "started",
        "percentage": 37,
        "label": "Writing row 3 — ünïcode",
        "updated_at": 1700000000.25,
    }
    assert 119_000 < redis_db13.pttl(f"{TEST_PREFIX}job:41:progress") <= 120_000
    assert store.read_many([]) == {}


def test_read_many_skips_values_that_are_not_snapshots(make_store, redis_db13):
    store = make_store()
    store.write(Snapshot(1, JOB_STARTED, 10, "a", 1.0))
    redis_db13.set(f"{TEST_PREFIX}job:2:progress", b"\x80not json")
    assert set(store.read_many([1, 2])) == {1}


def test_cancel_request_is_seen_by_the_next_write_and_cleared(make_store, redis_db13):
    store = make_store(TIMEOUT=60)
    store.write(Snapshot(5, JOB_STARTED, 20, "x", 1.0))
    store.request_cancel(5)
    store.request_cancel(6)  # a job with no snapshot yet
    assert 59_000 < redis_db13.pttl(f"{TEST_PREFIX}job:5:cancel") <= 60_000
    assert store.write(Snapshot(5, JOB_STARTED, 30, "y", 2.0)) is True
    got = store.read_many([5, 6])
    assert got[5] == Snapshot(5, JOB_STARTED, 30, "y", 2.0, True)
    assert got[6] == Snapshot(6, JOB_STARTED, 0, "", 0.0, True)
    store.clear(5, Snapshot(5, JOB_CANCELLED, 30, "y", 3.0))
    store.clear(6)
    assert store.read_many([5, 6]) == {}
    assert redis_db13.keys(f"{TEST_PREFIX}*") == []


def test_key_prefix_keeps_projects_apart(make_store, redis_db13):
    one, two = make_store(KEY_PREFIX="one:"), make_store(KEY_PREFIX="two:")
    one.write(Snapshot(1, JOB_STARTED, 50, "one's", 1.0))
    one.request_cancel(1)
    assert two.read_many([1]) == {}
    assert two.write(Snapshot(1, JOB_STARTED, 10, "two's", 1.0)) is False
    assert one.read_many([1])[1].label == "one's"
    assert sorted(redis_db13.keys("*")) == [b"one:job:1:cancel", b"one:job:1:progress", b"two:job:1:progress"]


def test_db_option_overrides_the_url(make_store, redis_db13):
    db = redis_db13.connection_pool.connection_kwargs["db"]
    url_without_db = settings.REDIS_TEST_URL.rsplit("/", 1)[0] + "/0"
    store = make_store(URL=url_without_db, DB=db)
    store.write(Snapshot(9, JOB_STARTED, 1, "", 1.0))
    assert redis_db13.exists(f"{TEST_PREFIX}job:9:progress")


def test_client_option_instance_or_dotted_path(make_store, redis_db13):
    from ferry_redis_testproject.clients import test_client

    by_path = make_store(CLIENT="ferry_redis_testproject.clients.test_client")
    by_path.write(Snapshot(3, JOB_STARTED, 60, "", 1.0))
    assert by_path.client is test_client
    own = redis.Redis.from_url(settings.REDIS_TEST_URL, decode_responses=True)
    by_instance = make_store(CLIENT=own)
    assert by_instance.read_many([3])[3].percentage == 60  # also with decode_responses=True
    by_instance.request_cancel(3)
    assert by_path.write(Snapshot(3, JOB_STARTED, 61, "", 2.0)) is True
    by_path.close()
    by_instance.close()
    assert test_client.ping() and own.ping()  # a CLIENT from OPTIONS is the caller's: close() leaves it open
    own.close()


# ── Round trips ────────────────────────────────────────────────────────────────


def _counting_store(make_store, **options) -> RedisProgressStore:
    store = make_store(CONNECTION_KWARGS={"connection_class": CountingConnection}, **options)
    store.client.ping()  # open the connection, so its handshake is not counted below
    CountingConnection.reset()
    return store


@pytest.mark.parametrize("batch", [1, 200, 2000])
def test_one_round_trip_per_operation_whatever_the_batch(make_store, batch):
    store = _counting_store(make_store)
    for job_id in range(batch):
        store.write(Snapshot(job_id, JOB_STARTED, job_id % 100, f"job {job_id}", 1.0))
    assert CountingConnection.round_trips == batch  # one per write: SET + GET + PUBLISH pipelined

    CountingConnection.reset()
    got = store.read_many(range(batch))
    assert len(got) == batch and got[batch - 1].label == f"job {batch - 1}"
    assert CountingConnection.round_trips == 1

    CountingConnection.reset()
    store.request_cancel(0)
    store.clear(0, Snapshot(0, JOB_CANCELLED, 0, "", 2.0))
    assert CountingConnection.round_trips == 2


def _create_parked(**fields) -> StepJob:
    return JobHandler.create_and_start(None, "redis_steps", **fields)


@pytest.mark.django_db(transaction=True)
def test_run_job_costs_one_round_trip_per_flush(redis_db13, fresh_store_health):
    options = {
        "URL": settings.REDIS_TEST_URL,
        "KEY_PREFIX": TEST_PREFIX,
        "CONNECTION_KWARGS": {"connection_class": CountingConnection},
    }
    with override_settings(
        TASK_FERRY={
            "EXECUTOR": PARKING,
            "PROGRESS_STORE": {"BACKEND": "redis", "OPTIONS": options},
            "PROGRESS_FLUSH_INTERVAL": 0.01,
        }
    ):
        from task_ferry.conf import get_progress_store

        get_progress_store().client.ping()
        job = _create_parked(steps=40, step_sleep=0.005)
        CountingConnection.reset()
        result = run_job(job.pk)
    assert result.outcome == JOB_FINISHED
    assert result.store_writes >= 5
    assert CountingConnection.round_trips == result.store_writes + 1  # every flush, plus the final clear
    job.refresh_from_db()
    assert (job.state, job.progress_percentage) == (JOB_FINISHED, 100)
    assert redis_db13.keys(f"{TEST_PREFIX}*") == []


# ── The live channel ───────────────────────────────────────────────────────────


def _collect(store, job_id, timeout, out: list, subscribed: threading.Event | None = None):
    def body():
        for snap in store.subscribe(job_id, timeout):
            out.append(snap)
            if subscribed is not None:
                subscribed.set()

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


def test_subscribe_yields_current_then_each_write_and_ends_with_the_final_state(make_store):
    writer, reader = make_store(), make_store()
    writer.write(Snapshot(7, JOB_STARTED, 10, "first", 1.0))
    seen: list[Snapshot] = []
    subscribed = threading.Event()
    thread = _collect(reader, 7, 5.0, seen, subscribed)
    assert subscribed.wait(5), "subscribe() did not yield the current snapshot"
    writer.write(Snapshot(7, JOB_STARTED, 20, "second", 2.0))
    writer.request_cancel(7)
    writer.write(Snapshot(7, JOB_STARTED, 30, "third", 3.0))
    writer.clear(7, Snapshot(7, JOB_CANCELLED, 30, "third", 4.0))
    writer.write(Snapshot(7, JOB_STARTED, 99, "after the end", 5.0))
    thread.join(5)
    assert not thread.is_alive(), "subscribe() did not end at the final snapshot"
    assert [(s.state, s.percentage, s.label, s.cancel_requested) for s in seen] == [
        (JOB_STARTED, 10, "first", False),
        (JOB_STARTED, 20, "second", False),
        (JOB_STARTED, 20, "second", True),
        (JOB_STARTED, 30, "third", True),
        (JOB_CANCELLED, 30, "third", True),
    ]


def test_subscribe_ends_after_timeout_without_messages(make_store):
    store = make_store()
    start = time.monotonic()
    assert list(store.subscribe(8, 0.3)) == []
    assert 0.25 < time.monotonic() - start < 2


@pytest.mark.django_db(transaction=True)
def test_subscriber_follows_a_running_job_to_its_end(redis_db13):
    """The live stream's view: a subscriber started while ``run_job`` runs in
    another thread gets rising percentages without polling and stops by itself
    at the job's final state."""
    options = {"URL": settings.REDIS_TEST_URL, "KEY_PREFIX": TEST_PREFIX}
    with override_settings(
        TASK_FERRY={
            "EXECUTOR": PARKING,
            "PROGRESS_STORE": {"BACKEND": "redis", "OPTIONS": options},
            "PROGRESS_FLUSH_INTERVAL": 0.02,
        }
    ):
        job = _create_parked(steps=50, step_sleep=0.02)
        reader = RedisProgressStore(options)
        seen: list[Snapshot] = []
        subscriber = threading.Thread(target=lambda: seen.extend(reader.subscribe(job.pk, 5.0)), daemon=True)
        subscriber.start()
        channel = reader.channel(job.pk)
        deadline = time.monotonic() + 5
        while redis_db13.pubsub_numsub(channel) != [(channel.encode(), 1)] and time.monotonic() < deadline:
            time.sleep(0.01)  # start the job only once the subscription is in place

        def work():
            try:
                run_job(job.pk)
            finally:
                connection.close()

        worker = threading.Thread(target=work)
        worker.start()
        worker.join(30)
        subscriber.join(5)
        reader.close()
    assert not subscriber.is_alive()
    assert len(seen) >= 10
    percentages = [s.percentage for s in seen]
    assert percentages == sorted(percentages)
    assert seen[-1].state == JOB_FINISHED and seen[-1].percentage == 100
    assert all(s.state == JOB_STARTED for s in seen[:-1])
