"""Real RQ workers for the tests.

:func:`rq_worker` runs a worker as a child of the test process, on the test
database and with the test's ``TASK_FERRY`` (through
:mod:`task_ferry.testing.subprocess`): either rq's own CLI (``rq worker``, in a
process where the bootstrap has set Django up) or ``manage.py ferry_rqworker``.
It returns once the worker (and its scheduler) is registered in Redis, and stops
it the way an operator would: SIGTERM, then a second SIGTERM (RQ's cold
shutdown) if it is still busy, which also kills a running work horse; a horse
runs in a process group of its own, so the process-group SIGTERM of
:func:`~task_ferry.testing.subprocess.running` alone would miss it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import redis
from django.conf import settings

from task_ferry.testing.subprocess import bootstrap_args, running

#: Key patterns of queued, scheduled and finished work; never workers, schedulers or their locks.
WORK_KEYS = (
    "rq:queue:*",
    "rq:scheduled:*",
    "rq:canceled:*",
    "rq:failed:*",
    "rq:finished:*",
    "rq:job:*",
    "rq:results:*",
)


def client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=10)


#: A client for the executor's ``CONNECTION`` option given as a dotted path.
CLIENT = redis.Redis.from_url(settings.REDIS_URL)


def purge(conn: redis.Redis) -> None:
    """Drop every queued, scheduled or recorded RQ job; leave running workers registered."""
    for pattern in WORK_KEYS:
        keys = list(conn.scan_iter(pattern, count=1000))
        if keys:
            conn.delete(*keys)


def _alive(proc: subprocess.Popen, within: float) -> bool:
    try:
        proc.wait(within)
    except subprocess.TimeoutExpired:
        return True
    return False


@contextmanager
def rq_worker(
    queues: Iterable[str],
    *,
    env: dict[str, str] | None = None,
    cli: bool = False,
    with_scheduler: bool = True,
    extra: Iterable[str] = (),
) -> Iterator[subprocess.Popen]:
    """A worker consuming ``queues`` (in that order) for the block: ``rq worker`` if ``cli``,
    else ``manage.py ferry_rqworker``. ``extra`` are further command-line arguments."""
    queues = list(queues)
    name = f"ferry-rq-test-{uuid.uuid4().hex[:10]}"
    flags = ["--name", name, *(["--with-scheduler"] if with_scheduler else []), *extra]
    if cli:
        args = bootstrap_args("-m", "rq.cli", "worker", "--url", settings.REDIS_URL, *flags, *queues)
    else:
        args = bootstrap_args("ferry_rqworker", *flags, *queues)
    conn = client()

    def ready() -> bool:
        if not conn.exists(f"rq:worker:{name}"):
            return False
        return not with_scheduler or all(conn.exists(f"rq:scheduler-lock:{q}") for q in queues)

    try:
        with running(args, env=env, ready=ready) as proc:
            try:
                yield proc
            finally:
                if proc.poll() is None:
                    os.kill(proc.pid, signal.SIGTERM)  # warm: an idle worker quits, a busy one finishes its job
                    if _alive(proc, 1.5):
                        # RQ ignores a second signal within a second of the first.
                        os.kill(proc.pid, signal.SIGTERM)  # cold: takes the horse down with it
                        _alive(proc, 10)
    finally:
        conn.close()
