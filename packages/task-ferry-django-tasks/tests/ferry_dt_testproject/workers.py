"""Real ``db_worker`` processes for the tests (and readiness probes for them)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from task_ferry.testing.subprocess import FORWARDED_SETTINGS, bootstrap_args, child_env, running


@contextmanager
def db_worker(*queues: str, backend: str = "default", worker_id: str | None = None) -> Iterator:
    """A real ``manage.py db_worker`` (django-tasks-db) on the test database, consuming ``queues``;
    entered once it has run a probe task, stopped (SIGTERM, then SIGKILL) at the end of the block.

    Each worker also consumes a private probe queue: its readiness is proven by the worker
    itself running the probe, even when other workers are up. Yields the ``Popen``, with the
    worker's id as ``worker_id``."""
    from django_tasks_db.models import DBTaskResult

    from ferry_dt_testproject.tasks import ping

    worker_id = worker_id or f"ferry-test-{uuid.uuid4().hex[:12]}"
    probe_queue = f"probe-{uuid.uuid4().hex[:12]}"
    probe = ping.using(queue_name=probe_queue, backend=backend).enqueue()
    args = bootstrap_args(
        "db_worker",
        "--backend", backend,
        "--queue-name", ",".join([*queues, probe_queue]),
        "--interval", "0.05",
        "--no-startup-delay",
        "--no-reload",
        "--worker-id", worker_id,
    )  # fmt: skip
    env = child_env(forward=(*FORWARDED_SETTINGS, "TASKS"))
    ready = DBTaskResult.objects.filter(id=probe.id, status="SUCCESSFUL").exists
    with running(args, env=env, ready=ready) as proc:
        proc.worker_id = worker_id
        yield proc
