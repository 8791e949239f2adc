"""Brokers under test and real ``dramatiq`` worker processes.

A :class:`BrokerUnderTest` names one of the brokers in :mod:`ferry_dramatiq_testproject.brokers`;
:func:`dramatiq_worker` runs ``python -m dramatiq ...`` as a child of the test process, on the
test database and with the test's ``TASK_FERRY`` (through :mod:`task_ferry.testing.subprocess`),
and returns once its worker process logged that it is ready.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from task_ferry.testing.subprocess import bootstrap_args, running

from .dramatiqapp.job_types import ROUTED_QUEUE

PREFIX = settings.QUEUE_PREFIX
DEFAULT_QUEUE = settings.TASK_FERRY["DEFAULT_QUEUE"]
#: Every queue a test of this run sends to: purged between tests, deleted (RabbitMQ) at the end.
KNOWN_QUEUES = (
    DEFAULT_QUEUE,
    ROUTED_QUEUE,
    f"{PREFIX}_b",
    f"{PREFIX}_unserved",
    f"{PREFIX}_adhoc",
    f"{PREFIX}_wire",
)
#: The worker entry point with the executor's broker, as the README tells users to run it.
WORKER = "task_ferry_dramatiq.worker:broker"
READY_LINE = "Worker process is ready for action."


@dataclass(frozen=True)
class BrokerUnderTest:
    name: str
    #: Attribute of ``ferry_dramatiq_testproject.brokers``.
    attr: str

    @property
    def path(self) -> str:
        return f"ferry_dramatiq_testproject.brokers:{self.attr}"

    @property
    def broker(self):
        from . import brokers

        return getattr(brokers, self.attr)

    def executor_setting(self) -> dict[str, Any]:
        return {"BACKEND": "dramatiq", "OPTIONS": {"BROKER": self.path}}

    def purge(self, queues: Iterable[str] = KNOWN_QUEUES) -> None:
        """Drop the messages waiting in ``queues``, their delay queues and dead letters
        (not those a worker holds). Purge, not delete: a running worker keeps consuming."""
        for queue in queues:
            self.broker.flush(queue)


REDIS = BrokerUnderTest("redis", "redis_broker")
RABBITMQ = BrokerUnderTest("rabbitmq", "rabbitmq_broker")


@contextmanager
def dramatiq_worker(
    *modules: str,
    queues: Iterable[str] | None = None,
    threads: int = 1,
    prefetch: int | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen]:
    """``dramatiq <modules> --processes 1 --threads N [--queues ...]``, started for the block.

    ``modules`` default to :data:`WORKER`. ``prefetch`` sets ``dramatiq_queue_prefetch``
    (the most messages each consumer holds, running ones included). Stopped with SIGTERM to its process
    group (SIGKILL 15 s later); its log is written to stderr at the end, where pytest shows it
    for a failing test."""
    with tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False) as log:
        log_path = log.name
    args = bootstrap_args(
        "-m", "dramatiq", *(modules or (WORKER,)),
        "--processes", "1", "--threads", str(threads),
        "--worker-shutdown-timeout", "5000",
        "--log-file", log_path,
    )  # fmt: skip
    if queues is not None:
        args += ["--queues", *queues]
    child = dict(env) if env is not None else None
    if prefetch is not None:
        from task_ferry.testing.subprocess import child_env

        child = child or child_env()
        child["dramatiq_queue_prefetch"] = str(prefetch)

    def ready() -> bool:
        with open(log_path) as f:
            return READY_LINE in f.read()

    try:
        with running(args, env=child, ready=ready) as proc:
            yield proc
    finally:
        with open(log_path) as f:
            sys.stderr.write(f"--- dramatiq log ---\n{f.read()[-8000:]}\n")
        os.unlink(log_path)
