"""Brokers and real ``celery worker`` processes for the tests.

A :class:`Broker` names one of the test project's Celery apps; :func:`celery_worker`
runs ``celery -A <app> worker`` as a child of the test process, on the test
database and with the test's ``TASK_FERRY`` (through
:mod:`task_ferry.testing.subprocess`), and returns once the worker answers a ping.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kombu.utils.imports import symbol_by_name

from task_ferry.testing.subprocess import bootstrap_args, running

#: Every queue a test of this suite sends to (RabbitMQ keeps queues between tests; these are purged).
KNOWN_QUEUES = (
    "celery",
    "default",
    "ferry_conformance_b",
    "ferry_conformance_unserved",
    "ferry_celery_routed",
    "ferry_celery_lost",
)


@dataclass(frozen=True)
class Broker:
    name: str
    #: ``-A`` argument of the worker, and the executor's ``APP`` option.
    app_path: str

    @property
    def app(self):
        return symbol_by_name(self.app_path)

    def executor_setting(self, **options: Any) -> dict:
        return {"BACKEND": "celery", "OPTIONS": {"APP": self.app_path, **options}}

    def purge(self, queues: Iterable[str] = KNOWN_QUEUES) -> None:
        """Drop the messages waiting in ``queues`` (not those a worker holds unacknowledged).

        Purge, not delete: a running worker keeps consuming, and on Redis its bindings stay."""
        with self.app.connection_for_write() as conn:
            for queue in queues:
                channel = conn.channel()  # RabbitMQ closes a channel on a purge of a missing queue
                try:
                    channel.queue_purge(queue)
                except conn.channel_errors:
                    pass
                finally:
                    channel.close()


REDIS = Broker("redis", "ferry_celery_testproject.celery_app:redis_app")
RABBITMQ = Broker("rabbitmq", "ferry_celery_testproject.celery_app:rabbitmq_app")


@contextmanager
def celery_worker(
    broker: Broker,
    queues: Iterable[str],
    *,
    concurrency: int = 1,
    pool: str = "prefork",
    env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen]:
    """A ``celery worker`` consuming ``queues``, started for the block and stopped after
    (SIGTERM to its process group, SIGKILL 15 s later)."""
    hostname = f"ferry-{uuid.uuid4().hex[:10]}@localhost"
    args = bootstrap_args(
        "-m", "celery", "-A", broker.app_path, "worker",
        "--pool", pool,
        "--concurrency", str(concurrency),
        "--queues", ",".join(queues),
        "--hostname", hostname,
        "--without-gossip", "--without-mingle", "--without-heartbeat",
        "--loglevel", "INFO",
    )  # fmt: skip
    app = broker.app
    with running(args, env=env, ready=lambda: app.control.ping(destination=[hostname], timeout=0.5)) as proc:
        yield proc
