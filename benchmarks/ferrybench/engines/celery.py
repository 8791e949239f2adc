"""Celery (issue 4): ``celery worker --pool prefork --concurrency 2`` on Redis DB 5.

Raw: ``noop.apply_async(args=[i], queue="bench")``, a task that does nothing with the options
of both ferry tasks (``acks_late=True, ignore_result=True``), on a Celery app without Django.
Ours: task-ferry-celery's task; 0.1.1: its ``CeleryExecutor`` (progress in Django's RedisCache).
A run is done when the broker holds no message of the queue, neither waiting nor
unacknowledged (every task is ``acks_late``: acknowledged after it returned).

``BENCH_CELERY_DB_REUSE_MAX`` (unset: Celery's default, connections closed around every task)
sets ``CELERY_DB_REUSE_MAX`` on the tracked sides. Both tracked sides use ``CONN_MAX_AGE = None``.
"""

from __future__ import annotations

import os
import sys

from ferrybench.engine import Engine, base_settings

BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/5")


class Celery(Engine):
    name = "celery"
    redis_url = BROKER_URL
    sides = ("raw", "ours", "ferry011", "floor")

    @property
    def title(self) -> str:
        reuse = os.environ.get("BENCH_CELERY_DB_REUSE_MAX")
        return "Celery, prefork concurrency 2, Redis broker" + (f", CELERY_DB_REUSE_MAX={reuse}" if reuse else "")

    options = {"BENCH_CELERY_DB_REUSE_MAX": "CELERY_DB_REUSE_MAX"}

    def settings(self, side: str) -> dict:
        s = base_settings(self, side)
        # 0.1.1 keeps progress and the cancel flag in the default cache.
        s["CACHES"] = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": BROKER_URL, "KEY_PREFIX": "bench"}}  # fmt: skip
        if side == "floor":
            return s
        if side == "ours":
            s["INSTALLED_APPS"].append("task_ferry_celery")
            app = {"APP": "ferrybench.engines.celery_app:app"}
            s["TASK_FERRY"] = {"EXECUTOR": {"BACKEND": "celery", "OPTIONS": app}, "DEFAULT_QUEUE": self.queue}
        else:
            s["TASK_FERRY"] = {"EXECUTOR": "task_ferry.executors.celery.CeleryExecutor", "CELERY_QUEUE": self.queue}
        return s

    def worker_commands(self, side: str, counting: bool) -> list[list[str]]:
        return [[sys.executable, "-m", "celery", "-A", "ferrybench.engines.celery_app:app", "worker",
                 "--pool", "prefork", "--concurrency", "2", "-Q", self.queue, "--without-gossip",
                 "--without-mingle", "--without-heartbeat", "--loglevel", "WARNING",
                 "-n", f"bench-{os.getpid()}@localhost"]]  # fmt: skip

    def ready(self, client, procs) -> bool:
        from ferrybench.engines.celery_app import app

        return bool(app.control.ping(timeout=0.5))

    def send_raw(self, n: int) -> None:
        from ferrybench.engines.celery_app import noop

        for i in range(n):
            noop.apply_async(args=[i], queue=self.queue)

    def send_floor(self, ids: list[int]) -> None:
        from ferrybench.engines.celery_app import floor

        for job_id in ids:
            floor.apply_async(args=[job_id], queue=self.queue)

    def expect(self, client, kind: str, n: int):
        keys = [self.queue] + [f"{self.queue}\x06\x16{p}" for p in range(1, 10)]  # kombu's priority lists

        def drained() -> bool:
            with client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.llen(key)
                pipe.hlen("unacked")
                return not any(pipe.execute())

        return drained


ENGINE = Celery()
