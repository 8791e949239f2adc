"""Benchmark: the ``redis`` store vs core's ``cache`` store on Django's RedisCache vs
django-task-ferry 0.1.1, all against the same Redis.

Run from the repository root (Redis on 127.0.0.1:6379; only database 12 is
used, and flushed before and after)::

    .venv/bin/python packages/task-ferry-redis/benchmarks/bench_redis_store.py \
        [--increments 100000] [--forced-increments N] [--jobs 200] [--v011-python PYTHON] [--skip-v011-job] \
        [--json PATH]

It is also the ``redis`` part of ``./dev bench`` (``benchmarks/run.py``), which runs it in
``benchmarks/.venvs/ours`` beside the other benchmarks.

1. **A job of N increments**, run the way each version runs jobs: this project's
   ``run_job`` (flushes coalesced to one per ``PROGRESS_FLUSH_INTERVAL``, default
   0.25 s) with the ``redis`` store, then with the ``cache`` store; 0.1.1's
   ``JobHandler`` through its ``ImmediateExecutor`` (a cancel check and a cache
   write on every increment). Reported: wall time, increments/s, round trips. The
   runs with a flush forced on every increment make ``--forced-increments`` (default:
   ``--increments``; ``./dev bench`` uses 20,000, as their rate does not depend on the
   count and 100,000 round trips of the cache store take minutes).
2. **Live progress of M jobs**, the read behind a list endpoint: ``read_many``
   of each store, and 0.1.1's own ``JobSerializer(jobs, many=True).data`` (real
   0.1.1 code: one ``cache.get`` per job for the percentage and one for the label).
   Reported: round trips and the median time of 20 reads.

Round trips are counted client-side: one per ``send_packed_command`` of a
redis-py connection (a pipeline or an ``MGET`` sends once), not counting the
connection handshake. 0.1.1 runs in its own interpreter (``--v011-python``, by default
``benchmarks/.venvs/ferry011``, which ``./dev bench`` creates), given access to this
interpreter's ``redis`` package only; its column is left out if that interpreter is missing.
``--skip-v011-job`` measures only 0.1.1's read (``./dev bench`` takes 0.1.1's job of the same
size from its core part, which runs it already).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis

REDIS_URL = "redis://127.0.0.1:6379/12"
KEY_PREFIX = "ferry_bench:"
READ_REPEATS = 20
#: A flush interval short enough that the runner flushes on (nearly) every increment, as 0.1.1 wrote.
EVERY_INCREMENT = 1e-9
V011_PYTHON = Path(__file__).resolve().parents[3] / "benchmarks" / ".venvs" / "ferry011" / "bin" / "python"


class CountingConnection(redis.Connection):
    """One round trip per ``send_packed_command``; the connection handshake is not counted."""

    round_trips = 0
    _lock = threading.Lock()

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._handshaking = False

    def _handshake(self, connect, *args, **kwargs):
        outer, self._handshaking = self._handshaking, True
        try:
            return connect(*args, **kwargs)
        finally:
            self._handshaking = outer

    def connect(self, *args, **kwargs):
        return self._handshake(super().connect, *args, **kwargs)

    if hasattr(redis.Connection, "connect_check_health"):

        def connect_check_health(self, *args, **kwargs):
            return self._handshake(super().connect_check_health, *args, **kwargs)

    def send_packed_command(self, command, *args, **kwargs):
        if not self._handshaking:
            with CountingConnection._lock:
                CountingConnection.round_trips += 1
        return super().send_packed_command(command, *args, **kwargs)


def _configure(db_path: str, installed_apps: list[str], task_ferry: dict) -> None:
    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", *installed_apps],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": db_path}},
        CACHES={
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": REDIS_URL,
                "OPTIONS": {"connection_class": CountingConnection},
            }
        },
        TASK_FERRY=task_ferry,
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        LOGGING_CONFIG=None,
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _timed(fn) -> tuple[float, int, object]:
    CountingConnection.round_trips = 0
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, CountingConnection.round_trips, value


def _median_read(fn) -> tuple[float, int]:
    times, trips = [], set()
    for _ in range(READ_REPEATS):
        elapsed, n, _ = _timed(fn)
        times.append(elapsed)
        trips.add(n)
    assert len(trips) == 1, trips
    return statistics.median(times), trips.pop()


# ── This project: redis store and cache store ─────────────────────────────────


def bench_current(increments: int, jobs: int, db_path: str, forced_increments: int | None = None) -> list[dict]:
    redis_store = {
        "BACKEND": "redis",
        "OPTIONS": {
            "URL": REDIS_URL,
            "KEY_PREFIX": KEY_PREFIX,
            "CONNECTION_KWARGS": {"connection_class": CountingConnection},
        },
    }
    _configure(db_path, ["task_ferry", "task_ferry.testing"], {"EXECUTOR": "immediate", "PROGRESS_STORE": "database"})
    from django.test import override_settings

    from task_ferry.conf import flush_interval, get_progress_store
    from task_ferry.protocols import Snapshot
    from task_ferry.runner import run_job
    from task_ferry.testing.base import create_pending_job

    rows = []
    stores = (("redis store (task-ferry-redis)", redis_store), ("cache store on RedisCache", "cache"))
    for interval in (None, EVERY_INCREMENT):
        for name, setting in stores:
            task_ferry = {"EXECUTOR": "immediate", "PROGRESS_STORE": setting}
            if interval is not None:
                task_ferry["PROGRESS_FLUSH_INTERVAL"] = interval
            with override_settings(TASK_FERRY=task_ferry):
                store = get_progress_store()
                store.read_many([0])  # open the connection outside the measurement
                steps = increments if interval is None else (forced_increments or increments)
                job = create_pending_job(steps=steps)
                elapsed, trips, result = _timed(lambda job=job: run_job(job.pk))
                assert result.outcome == "finished", result
                row = {
                    "name": name,
                    "increments": steps,
                    "interval": flush_interval(),
                    "job_seconds": elapsed,
                    "round_trips": trips,
                    "flushes": result.store_writes,
                }
                if interval is None:  # the read does not depend on the interval: measure it once
                    ids = list(range(10**9, 10**9 + jobs))
                    for job_id in ids:
                        store.write(Snapshot(job_id, "started", job_id % 100, f"step {job_id}", time.time()))
                    row["read_seconds"], row["read_round_trips"] = _median_read(
                        lambda store=store, ids=ids: store.read_many(ids)
                    )
                    assert len(store.read_many(ids)) == jobs
                    for job_id in ids:
                        store.clear(job_id)
            rows.append(row)
    return rows


# ── django-task-ferry 0.1.1 (run in its own interpreter) ──────────────────────


def bench_v011(increments: int, jobs: int, db_path: str, skip_job: bool = False) -> dict:
    _configure(
        db_path,
        ["rest_framework", "task_ferry"],
        {"EXECUTOR": "task_ferry.executors.immediate.ImmediateExecutor"},
    )
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection, models

    from task_ferry.api.serializers import JobSerializer
    from task_ferry.handler import JobHandler
    from task_ferry.models import Job
    from task_ferry.registry import JobType, job_type_registry

    class BenchJob(Job):
        steps = models.IntegerField(default=1)

        class Meta:
            app_label = "task_ferry"

    with connection.schema_editor() as editor:
        editor.create_model(BenchJob)

    class BenchJobType(JobType):
        type = "bench"
        model_class = BenchJob

        def run(self, job, progress):
            for _ in range(job.steps):
                progress.increment(100 / job.steps, state="working")

    job_type_registry.register(BenchJobType())
    from django.core.cache import cache

    cache.get("warm-up")  # open the connection outside the measurement
    elapsed = trips = None
    if not skip_job:
        elapsed, trips, job = _timed(lambda: JobHandler.create_and_start(None, "bench", steps=increments))
        job.refresh_from_db()
        assert job.state == "finished", job.state

    content_type = ContentType.objects.get_for_model(BenchJob, for_concrete_model=False)
    for _ in range(jobs):  # multi-table inheritance: no bulk_create
        BenchJob.objects.create(content_type=content_type, state="started", steps=1)
    listed = list(Job.objects.filter(state="started"))
    for n, row in enumerate(listed):
        row.set_progress(n % 100, f"step {n}")  # what a running 0.1.1 job leaves in the cache
    read_time, read_trips = _median_read(lambda: JobSerializer(listed, many=True).data)
    return {
        "name": "django-task-ferry 0.1.1 (cache)",
        "increments": increments,
        "interval": None,
        "job_seconds": elapsed,
        "round_trips": trips,
        "flushes": None,
        "read_seconds": read_time,
        "read_round_trips": read_trips,
    }


def _run_v011(python: str, increments: int, jobs: int, skip_job: bool) -> dict | None:
    if not Path(python).exists():
        print(f"(0.1.1 skipped: {python} not found)", file=sys.stderr)
        return None
    with tempfile.TemporaryDirectory(prefix="ferry-bench-") as tmp:
        # Only redis-py from this interpreter; Django, DRF and task_ferry stay 0.1.1's own.
        (Path(tmp) / "redis").symlink_to(Path(redis.__file__).parent)
        done = subprocess.run(
            [python, __file__, "--child-v011", "--increments", str(increments), "--jobs", str(jobs)]
            + (["--skip-v011-job"] if skip_job else []),
            env={**os.environ, "PYTHONPATH": tmp},
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        raise SystemExit(f"0.1.1 run failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--increments", type=int, default=100_000)
    parser.add_argument(
        "--forced-increments", type=int, help="increments of the forced-flush runs (default: --increments)"
    )
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--v011-python", default=str(V011_PYTHON))
    parser.add_argument("--skip-v011-job", action="store_true", help="measure only 0.1.1's batched read")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--child-v011", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ferry-bench-db-") as tmp:
        db_path = str(Path(tmp) / "bench.sqlite3")
        if args.child_v011:
            print(json.dumps(bench_v011(args.increments, args.jobs, db_path, args.skip_v011_job)))
            return
        admin = redis.Redis.from_url(REDIS_URL)
        admin.flushdb()
        try:
            rows = bench_current(args.increments, args.jobs, db_path, args.forced_increments)
            legacy = _run_v011(args.v011_python, args.increments, args.jobs, args.skip_v011_job)
        finally:
            admin.flushdb()
            admin.close()
    if legacy:
        rows.append(legacy)
    if args.json:
        args.json.write_text(json.dumps({"increments": args.increments, "jobs": args.jobs, "rows": rows}, indent=2))

    print(f"Jobs run through each version's runner, Redis {REDIS_URL}:\n")
    print(
        f"| {'store':<32} | {'flush interval':>14} | {'wall s':>8} | {'increments/s':>12} | {'round trips':>11} | {'flushes':>7} |"
    )
    print(f"|{'-' * 34}|{'-' * 15}:|{'-' * 9}:|{'-' * 13}:|{'-' * 12}:|{'-' * 8}:|")
    for row in rows:
        if row["job_seconds"] is None:
            continue
        interval = "every increment" if row["interval"] is None else f"{row['interval']:g} s"
        flushes = "-" if row["flushes"] is None else f"{row['flushes']:,}"
        print(
            f"| {row['name']:<32} | {interval:>14} | {row['job_seconds']:>8.3f} "
            f"| {row['increments'] / row['job_seconds']:>12,.0f} | {row['round_trips']:>11,} | {flushes:>7} |"
        )
    print(f"\nLive progress of {args.jobs} jobs (median of {READ_REPEATS} reads):\n")
    print(f"| {'reader':<32} | {'round trips':>11} | {'ms':>8} |")
    print(f"|{'-' * 34}|{'-' * 12}:|{'-' * 9}:|")
    for row in rows:
        if "read_seconds" in row:
            reader = row["name"] if row["flushes"] is not None else "0.1.1 JobSerializer(many=True)"
            print(f"| {reader:<32} | {row['read_round_trips']:>11,} | {row['read_seconds'] * 1000:>8.2f} |")


if __name__ == "__main__":
    main()
