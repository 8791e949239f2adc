"""Dramatiq (issue 5): ``dramatiq --processes 2 --threads 1`` on Redis DB 6
(``BENCH_DRAMATIQ_PROCESSES`` / ``BENCH_DRAMATIQ_THREADS`` change them; the counting pass runs
one process with one thread).

Raw: ``noop.send(i)``, an actor that does nothing (``max_retries=0``), on a worker without
Django. Ours: the worker also loads ``task_ferry_dramatiq.worker`` (Django set up, the
``task_ferry_run_job`` actor). A run is done when the broker holds no message of the queue,
waiting or unacknowledged (the Redis broker keeps a message in ``dramatiq:<queue>.msgs``
until the worker acknowledges it, after the actor returned).
"""

from __future__ import annotations

import os
import sys

from ferrybench.engine import Engine, base_settings

BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/6")
RAW_QUEUE = "bench_raw"
QUEUE = "bench"  # ours and the floor's
PROCESSES = os.environ.get("BENCH_DRAMATIQ_PROCESSES", "2")
THREADS = os.environ.get("BENCH_DRAMATIQ_THREADS", "1")


class Dramatiq(Engine):
    name = "dramatiq"
    queue = QUEUE
    sides = ("raw", "ours", "floor")
    redis_url = BROKER_URL
    title = f"Dramatiq, {PROCESSES} processes x {THREADS} thread(s), Redis broker"
    options = {"BENCH_DRAMATIQ_PROCESSES": "processes", "BENCH_DRAMATIQ_THREADS": "threads"}

    def settings(self, side: str) -> dict:
        s = base_settings(self, side)
        broker = {"BROKER": "ferrybench.engines.dramatiq_broker:broker"}
        s["TASK_FERRY"] = {"EXECUTOR": {"BACKEND": "dramatiq", "OPTIONS": broker}, "DEFAULT_QUEUE": self.queue}
        return s

    def worker_commands(self, side: str, counting: bool) -> list[list[str]]:
        modules = ["ferrybench.engines.dramatiq_broker:broker"]
        if side != "raw":
            modules.append("task_ferry_dramatiq.worker")
        return [[sys.executable, "-m", "dramatiq", *modules, "--processes", "1" if counting else PROCESSES,
                 "--threads", "1" if counting else THREADS, "--queues", self.queue, RAW_QUEUE, "--worker-shutdown-timeout", "10000"]]  # fmt: skip

    def ready(self, client, procs) -> bool:
        # Ready when a message sent now is processed.
        from ferrybench.engines.dramatiq_broker import noop

        noop.send(-1)
        deadline_polls = 100
        while client.hlen(f"dramatiq:{RAW_QUEUE}.msgs") and deadline_polls:
            import time

            time.sleep(0.05)
            deadline_polls -= 1
        return not client.hlen(f"dramatiq:{RAW_QUEUE}.msgs")

    def send_raw(self, n: int) -> None:
        from ferrybench.engines.dramatiq_broker import noop

        for i in range(n):
            noop.send(i)

    def send_floor(self, ids: list[int]) -> None:
        from ferrybench.engines.dramatiq_broker import floor

        for job_id in ids:
            floor.send(job_id)

    def expect(self, client, kind: str, n: int):
        key = f"dramatiq:{RAW_QUEUE if kind == 'raw' else self.queue}.msgs"
        return lambda: not client.hlen(key)


ENGINE = Dramatiq()
