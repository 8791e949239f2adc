"""Start the demo the way a person does (``manage.py demo``, which starts its own worker and
serves the page), on a private SQLite file and a free port; talk to it like the page does.

Redis (for the ``celery`` engine) is ``FERRY_DEMO_TEST_REDIS_URL``, by default database 2 of
127.0.0.1:6379, apart from the database 3 an interactive demo uses.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

DEMO_DIR = Path(__file__).resolve().parent.parent
URL_LINE = re.compile(r"task-ferry demo running at (http://\S+)")
TEST_REDIS_URL = os.environ.get("FERRY_DEMO_TEST_REDIS_URL", "redis://127.0.0.1:6379/2")
START_TIMEOUT = 120  # a cold start on a loaded machine: migrations, the worker's imports


def require_redis() -> None:
    parts = urlsplit(TEST_REDIS_URL)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=2).close()
    except OSError as exc:
        pytest.fail(
            f"The celery engine needs Redis at {TEST_REDIS_URL} ({exc}). Start it with: "
            'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no'
        )


# ── Processes ──────────────────────────────────────────────────────────────────


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state letter, start time) of a live process, from /proc; None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0], int(fields[19])


def descendants(pid: int) -> dict[int, int]:
    """Every process below ``pid``: {pid: start time} (the start time tells a reused pid apart)."""
    children: dict[int, list[int]] = {}
    started: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            children.setdefault(stat[0], []).append(int(entry))
            started[int(entry)] = stat[2]
    found: dict[int, int] = {}
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child in started and child not in found:
                found[child] = started[child]
                todo.append(child)
    return found


def still_running(processes: dict[int, int]) -> list[int]:
    """The processes of ``processes`` that still run (zombies count as ended)."""
    alive = []
    for pid, start in processes.items():
        stat = _stat(pid)
        if stat is not None and stat[2] == start and stat[1] != "Z":
            alive.append(pid)
    return alive


class Demo:
    """A running ``manage.py demo``."""

    def __init__(self, proc: subprocess.Popen, url: str, log: Path, engine: str) -> None:
        self.proc = proc
        self.url = url
        self.log = log
        self.engine = engine

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def client(self) -> ApiClient:
        return ApiClient(self.url)


@contextmanager
def run_demo(tmp_path: Path, engine: str = "django-tasks"):
    """Start ``manage.py demo --port 0`` and yield a :class:`Demo` once it prints its URL.
    At the end it gets a SIGINT, like Ctrl+C (a test may have stopped it already)."""
    if engine == "celery":
        require_redis()
    state = tmp_path / f"state-{engine}"
    log = tmp_path / f"demo-{engine}.log"
    env = {
        **os.environ,
        "FERRY_DEMO_STATE_DIR": str(state),
        "FERRY_DEMO_ENGINE": engine,
        "FERRY_DEMO_REDIS_URL": TEST_REDIS_URL,
        "PYTHONUNBUFFERED": "1",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(DEMO_DIR / "manage.py"), "demo", "--port", "0"],
            cwd=DEMO_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group, so a test can Ctrl+C it like a terminal does
        )
    seen: dict[int, int] = {}
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not (match := URL_LINE.search(log.read_text(errors="replace"))):
            if proc.poll() is not None:
                pytest.fail(f"manage.py demo exited with {proc.returncode} before serving:\n{log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"manage.py demo printed no URL within {START_TIMEOUT} s:\n{log.read_text()}")
            time.sleep(0.1)
        seen.update(descendants(proc.pid))
        yield Demo(proc, match.group(1), log, engine)
    finally:
        if proc.poll() is None:
            seen.update(descendants(proc.pid))
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for pid in still_running(seen):  # never leave a worker behind, whatever the test found
            os.kill(pid, signal.SIGKILL)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout} s waiting for {what}")
        time.sleep(interval)


# ── The API, as the page uses it ───────────────────────────────────────────────


class ApiClient:
    """Session and CSRF cookie from the page, then JSON calls to ``/api/jobs/``."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        with self.opener.open(self.url + "/", timeout=30) as response:
            assert response.status == 200
        self.csrf = next(c.value for c in self.jar if c.name == "csrftoken")

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict | list]:
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Accept": "application/json", "Content-Type": "application/json", "X-CSRFToken": self.csrf},
        )
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def start(self, **values) -> dict:
        status, job = self.call("POST", "/api/jobs/", {"type": "report", "values": values})
        assert status == 201, job
        return job

    def job(self, job_id: int) -> dict:
        status, job = self.call("GET", f"/api/jobs/{job_id}/")
        assert status == 200, job
        return job
