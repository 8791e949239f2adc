"""``GET /<id>/events/``: server-sent events, through real servers.

Each server runs as a subprocess on the test database (gunicorn with threads and
``runserver`` for WSGI, uvicorn for ASGI); the job runs in yet another process,
a worker started with ``run_job`` while the stream is open, so everything the
stream shows crossed process boundaries through the progress store. The
``redis`` store exercises the live channel (WSGI) and the ``database`` store
the polling fallback.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from conftest import API, PASSWORD, make_job
from django.conf import settings as django_settings

from task_ferry.testing.subprocess import bootstrap_args, child_env, run_python, running

SERVERS = {
    "gunicorn": lambda port: bootstrap_args(
        "-m",
        "gunicorn",
        "ferry_drf_testproject.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--worker-class",
        "gthread",
        "--workers",
        "1",
        "--threads",
        "8",
        "--timeout",
        "60",
    ),
    "runserver": lambda port: bootstrap_args("runserver", f"127.0.0.1:{port}", "--noreload", "--skip-checks"),
    "uvicorn": lambda port: bootstrap_args(
        "-m",
        "uvicorn",
        "ferry_drf_testproject.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ),
}
STORES = {
    "redis": lambda: django_settings.TASK_FERRY["PROGRESS_STORE"],
    "database": lambda: "database",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def users(transactional_db, make_user):
    return {"alice": make_user("alice"), "bob": make_user("bob"), "staff": make_user("operator", staff=True)}


@pytest.fixture
def serve(users, settings):
    """``serve(kind, store)``: start a server of ``kind`` with the ``store`` setting; return its base URL."""

    def start(kind: str, store: str) -> str:
        settings.TASK_FERRY = {**settings.TASK_FERRY, "PROGRESS_STORE": STORES[store]()}
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        env = child_env(forward=("TASK_FERRY", "CACHES", "TASK_FERRY_DRF"))
        probe = f"{base}{API}health/"
        context = running(SERVERS[kind](port), env=env, ready=lambda: httpx.get(probe, timeout=2).status_code == 403)
        context.__enter__()
        started.append(context)
        return base

    started: list = []
    yield start
    for context in started:
        context.__exit__(None, None, None)


def events(response: httpx.Response) -> Iterator[tuple[str, dict | None]]:
    """Parse a ``text/event-stream`` body into ``(event, data)``; comments yield ``("comment", None)``."""
    name, data = "message", []
    for line in response.iter_lines():
        if line == "":
            if data:
                yield name, json.loads("\n".join(data))
            name, data = "message", []
        elif line.startswith(":"):
            yield "comment", None
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


def _worker(job_id: int, env: dict) -> threading.Thread:
    """Run the job in a separate process (a worker), in the background."""
    thread = threading.Thread(
        target=run_python,
        args=(f"from task_ferry.runner import run_job; print(run_job({job_id}).outcome)",),
        kwargs={"env": env, "timeout": 60},
        daemon=True,
    )
    thread.start()
    return thread


def _stream(base: str, job_id: int, user: str = "alice"):
    return httpx.stream(
        "GET",
        f"{base}{API}{job_id}/events/",
        auth=(user, PASSWORD),
        timeout=httpx.Timeout(30.0),
        headers={"Accept": "text/event-stream"},
    )


def _health(base: str) -> dict:
    return httpx.get(f"{base}{API}health/", auth=("operator", PASSWORD), timeout=5).json()


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout}s")


pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("store", ["redis", "database"])
@pytest.mark.parametrize("kind", ["gunicorn", "runserver", "uvicorn"])
def test_a_client_follows_a_job_run_by_a_worker_until_it_ends(serve, users, kind, store):
    base = serve(kind, store)
    job = make_job(users["alice"], "step", "pending", steps=8, step_sleep=0.25)
    seen: list[tuple[str, dict | None]] = []

    with _stream(base, job.pk) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        stream = events(response)
        seen.append(next(stream))
        assert seen[0][0] == "progress" and seen[0][1]["state"] == "pending"
        worker = _worker(job.pk, child_env(forward=("TASK_FERRY", "CACHES")))
        for item in stream:
            seen.append(item)
        worker.join(30)

    named = [(name, data) for name, data in seen if name != "comment"]
    assert named[-1][0] == "end", named
    final = named[-1][1]
    assert (final["id"], final["state"], final["progress_percentage"]) == (job.pk, "finished", 100)
    assert final["progress_state"] == "step 8 of 8"
    running_updates = [data for name, data in named if name == "progress" and data["state"] == "started"]
    assert any(0 < data["progress_percentage"] < 100 for data in running_updates), named
    percentages = [data["progress_percentage"] for data in running_updates]
    assert percentages == sorted(percentages)
    assert [name for name, _ in named[:-1]] == ["progress"] * (len(named) - 1)


@pytest.mark.parametrize("kind", ["gunicorn", "runserver", "uvicorn"])
def test_a_pending_job_cancelled_through_the_api_ends_the_stream_at_once(serve, users, redis_db4, settings, kind):
    """The cancel of a pending job is published on the job's live channel (core's
    ``JobHandler.cancel``), so a WSGI stream subscribed to it ends at once rather than at its
    next database check, which is ``SSE_KEEPALIVE`` (60 s here) away. Under ASGI the stream
    polls (``SSE_POLL_INTERVAL``)."""
    settings.TASK_FERRY_DRF = {**settings.TASK_FERRY_DRF, "SSE_KEEPALIVE": 60}
    base = serve(kind, "redis")
    job = make_job(users["alice"], "step", "pending")
    channel = f"ferry_drf_test:job:{job.pk}:events"

    with _stream(base, job.pk) as response:
        stream = events(response)
        assert next(stream)[1]["state"] == "pending"
        if kind != "uvicorn":  # cancel once the stream listens, or the test would measure the race
            _wait(lambda: dict(redis_db4.pubsub_numsub(channel)).get(channel.encode(), 0) == 1, 10, "subscribe")
        cancelled = httpx.post(f"{base}{API}{job.pk}/cancel/", auth=("alice", PASSWORD), timeout=5)
        assert cancelled.status_code == 200
        started = time.monotonic()
        rest = [item for item in stream if item[0] != "comment"]
        took = time.monotonic() - started

    assert rest == [("end", rest[-1][1])] and rest[-1][1]["state"] == "cancelled"
    # Well under SSE_KEEPALIVE: the live channel (or the ASGI poll) told the stream, not the periodic check.
    assert took < 20, took


def test_an_ended_job_gets_its_end_event_at_once(serve, users):
    base = serve("uvicorn", "redis")
    job = make_job(users["alice"], "step", "failed", error="boom")

    with _stream(base, job.pk) as response:
        items = list(events(response))

    assert items == [("end", items[0][1])] and items[0][1]["error"] == "boom"


@pytest.mark.parametrize("kind,store", [("gunicorn", "redis"), ("runserver", "database"), ("uvicorn", "redis")])
def test_a_client_that_disconnects_releases_the_stream(serve, users, redis_db4, kind, store):
    """The server notices the disconnect (WSGI: when the next keep-alive fails to go out; ASGI:
    at once), closes the generator, and with it the live-channel subscription."""
    base = serve(kind, store)
    job = make_job(users["alice"], "step", "pending")
    channel = f"ferry_drf_test:job:{job.pk}:events"

    def subscribers() -> int:
        return dict(redis_db4.pubsub_numsub(channel)).get(channel.encode(), 0)

    with _stream(base, job.pk) as response:
        stream = events(response)
        assert next(stream)[0] == "progress"
        _wait(lambda: _health(base)["event_streams"] == 1, 10, "the stream being counted")
        if kind != "uvicorn" and store == "redis":
            _wait(lambda: subscribers() == 1, 10, "the stream subscribing to the job's channel")
    # Leaving the block closed the connection.

    _wait(lambda: _health(base)["event_streams"] == 0, 10, "the server releasing the stream")
    assert subscribers() == 0


def test_someone_elses_job_stream_is_404_through_a_real_server(serve, users):
    base = serve("uvicorn", "redis")
    job = make_job(users["bob"], "step", "pending")

    theirs = httpx.get(f"{base}{API}{job.pk}/events/", auth=("alice", PASSWORD), timeout=5)
    missing = httpx.get(f"{base}{API}99999999/events/", auth=("alice", PASSWORD), timeout=5)

    assert theirs.status_code == missing.status_code == 404
    assert theirs.content == missing.content


def test_a_stream_closes_after_its_maximum_duration(users, client_for, settings):
    """Run in-process (the WSGI generator under Django's test client): a job that never ends
    does not hold its watcher for ever."""
    settings.TASK_FERRY_DRF = {**settings.TASK_FERRY_DRF, "SSE_MAX_DURATION": 1.5, "SSE_KEEPALIVE": 0.5}
    job = make_job(users["alice"], "step", "pending")
    started = time.monotonic()

    response = client_for(users["alice"]).get(f"{API}{job.pk}/events/")
    body = b"".join(response.streaming_content).decode()

    assert 1.5 <= time.monotonic() - started < 5
    assert body.startswith("retry: 3000\n\nevent: progress\n") and "event: end" not in body
    assert ": keep-alive" in body
