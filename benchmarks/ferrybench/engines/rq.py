"""RQ (issue 5): 2 RQ workers on Redis DB 8, ``rq.Worker`` by default (a work horse forked per job).

Raw: ``rq worker`` itself (no Django) running ``queue.enqueue_call("ferrybench.engines.rq.noop",
args=(i,))`` with the options ours sends (``result_ttl=0``, ``failure_ttl``, ``timeout=-1``).
Ours: ``manage.py ferry_rqworker``, an ``rq.Worker`` in a process with Django set up, running
task-ferry-rq's job function. A run is done when the workers' own success counters
(``successful_job_count``, bumped by RQ after the function returned) grew by N.

``BENCH_RQ_WORKER_CLASS`` (default ``rq.Worker``; ``rq.SimpleWorker`` runs jobs in the worker
process) picks the worker class of both sides, ``BENCH_RQ_WORKERS`` (default 2) their number.
"""

from __future__ import annotations

import os
import sys
import uuid

from ferrybench.engine import Engine, base_settings

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8")
FAILURE_TTL = 7 * 24 * 3600  # task_ferry_rq.executor.FAILURE_TTL (the raw side has no task-ferry)
WORKERS = int(os.environ.get("BENCH_RQ_WORKERS", "2"))


def noop(i: int) -> None:
    """The raw side's job function."""
    return None


class RQ(Engine):
    name = "rq"
    sides = ("raw", "ours", "floor")
    redis_url = REDIS_URL
    options = {"BENCH_RQ_WORKER_CLASS": "worker class", "BENCH_RQ_WORKERS": "workers"}

    @property
    def title(self) -> str:
        return f"RQ, {WORKERS} workers ({self.worker_class}), Redis"

    def __init__(self) -> None:
        self.names: list[str] = []

    @property
    def worker_class(self) -> str:
        return os.environ.get("BENCH_RQ_WORKER_CLASS", "rq.Worker")

    def settings(self, side: str) -> dict:
        s = base_settings(self, side)
        s["INSTALLED_APPS"].append("task_ferry_rq")
        worker_class = self.worker_class
        if os.environ.get("BENCH_COUNT"):
            worker_class = "ferrybench.engines.rq_counting.Counting" + worker_class.rsplit(".", 1)[1]
        options = {"URL": REDIS_URL, "WORKER_CLASS": worker_class}
        s["TASK_FERRY"] = {"EXECUTOR": {"BACKEND": "rq", "OPTIONS": options}, "DEFAULT_QUEUE": self.queue}
        return s

    def worker_commands(self, side: str, counting: bool) -> list[list[str]]:
        self.names = [f"bench-{uuid.uuid4().hex[:8]}" for _ in range(1 if counting else WORKERS)]
        if side == "raw":
            cmd = [sys.executable, "-m", "rq.cli", "worker", self.queue, "--url", REDIS_URL,
                   "--worker-class", self.worker_class, "--logging_level", "WARNING", "--name"]  # fmt: skip
        else:
            cmd = [sys.executable, "-m", "django", "ferry_rqworker", self.queue, "--logging-level", "WARNING", "--name"]
        return [[*cmd, name] for name in self.names]

    def ready(self, client, procs) -> bool:
        return all(client.exists(f"rq:worker:{name}") for name in self.names)

    def successes(self, client) -> int:
        with client.pipeline(transaction=False) as pipe:
            for name in self.names:
                pipe.hget(f"rq:worker:{name}", "successful_job_count")
            return sum(int(v or 0) for v in pipe.execute())

    def send_raw(self, n: int) -> None:
        import redis
        from rq import Queue

        queue = Queue(self.queue, connection=redis.Redis.from_url(REDIS_URL))
        for i in range(n):
            queue.enqueue_call("ferrybench.engines.rq.noop", args=(i,), result_ttl=0, failure_ttl=FAILURE_TTL,
                               timeout=-1)  # fmt: skip

    def send_floor(self, ids: list[int]) -> None:
        import redis
        from rq import Queue

        queue = Queue(self.queue, connection=redis.Redis.from_url(REDIS_URL))
        for job_id in ids:
            queue.enqueue_call("ferrybench.floor.run", args=(job_id,), result_ttl=0, failure_ttl=FAILURE_TTL,
                               timeout=-1)  # fmt: skip

    def expect(self, client, kind: str, n: int):
        target = self.successes(client) + n
        return lambda: self.successes(client) >= target


ENGINE = RQ()
