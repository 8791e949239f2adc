"""Benchmark: no-op jobs end to end through RQ, tracked by task-ferry and raw.

    /work/main/.venv/bin/python packages/task-ferry-rq/benchmarks/bench_rq.py \\
        [--jobs 2000] [--runs 3] [--workers 2] [--setups fork,simple] [--json PATH]

What is measured, with ``--workers`` real RQ workers (``manage.py ferry_rqworker bench``,
which is an ``rq.Worker`` / ``rq.SimpleWorker`` in a process with Django set up) on
Redis (redis://127.0.0.1:6379/8, flushed) and PostgreSQL (database ``ferry_bench_rq``
on 127.0.0.1:5432, created and dropped here), for each worker setup:

``fork``
    ``rq.Worker``, RQ's default: a work horse is forked for every job.
``simple``
    ``rq.SimpleWorker``: jobs run in the worker process itself.

and in each setup:

``raw``
    ``--jobs`` calls of ``queue.enqueue_call("bench_rq.noop", args=(i,), ...)`` with the
    options ours sends (``result_ttl=0``, ``failure_ttl``, ``timeout=-1``): a function
    that does nothing, on the same workers.
``ours, create_and_start`` / ``ours, create_many``
    task-ferry-core + task-ferry-rq: ``JobHandler.create_and_start(None, "bench_noop")``
    in a loop, or ``JobHandler.create_many(None, "bench_noop", [{}] * jobs)`` (one
    transaction, dispatched at commit); the workers run ``task_ferry_rq.jobs.run_job``
    -> core's ``run_job``. Default core settings (``PROGRESS_STORE`` ``"database"``);
    ``CONN_MAX_AGE = None`` (a SimpleWorker keeps its connection between jobs; a forked
    horse connects afresh whatever the setting).

Each figure is the median of ``--runs`` timed runs, from the first dispatch until the
workers' own success counters (``successful_job_count`` in each worker's Redis hash,
bumped by RQ after the job function returned) grew by ``--jobs``, then checked against
the database (every job ``finished``). Raw and ours are interleaved in one driver, so
the ratios compare figures taken under the same machine load; a warm-up of 100 of each
precedes the timed runs.

DB statements and connections per job run are counted in a separate, untimed pass
(500 jobs, ``create_many``) with one worker of class ``bench_rq.Counting<Setup>``: it
patches ``CursorWrapper.execute`` / ``executemany`` and ``BaseDatabaseWrapper.connect``
before it starts, so every statement any Django connection sends in the process that
runs the job (the ``database`` store's own connection too) is counted, and adds the
job's counts to Redis after each job. ``BEGIN`` / ``COMMIT`` sent by psycopg itself
(``atomic()``) are not cursor statements and are not counted.
"""

from __future__ import annotations

import os

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8")
QUEUE = "bench"
JOB_TYPE = "bench_noop"
STATEMENTS_KEY = "bench:statements"
CONNECTS_KEY = "bench:connects"


def noop(i: int) -> None:
    """The raw side's job function."""
    return None


# ── Role 2: Django settings module, app and worker classes (imported as ``bench_rq``) ──

if os.environ.get("BENCH_DB"):
    from django.apps import AppConfig
    from rq import SimpleWorker, Worker

    SECRET_KEY = "bench"
    DEBUG = False
    USE_TZ = True
    DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
    INSTALLED_APPS = [
        "django.contrib.contenttypes",
        "django.contrib.auth",
        "task_ferry",
        "task_ferry_rq",
        "bench_rq.Bench",
    ]
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": "127.0.0.1",
            "PORT": "5432",
            "USER": "postgres",
            "NAME": os.environ["BENCH_DB"],
            "CONN_MAX_AGE": None,
        }
    }
    TASK_FERRY = {
        "EXECUTOR": {
            "BACKEND": "rq",
            "OPTIONS": {"URL": REDIS_URL, "WORKER_CLASS": os.environ.get("BENCH_WORKER_CLASS", "rq.Worker")},
        },
        "DEFAULT_QUEUE": QUEUE,
    }
    LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}

    class Bench(AppConfig):
        name = "bench_rq"
        label = "bench_rq"

        def ready(self) -> None:
            from task_ferry.models import Job
            from task_ferry.registry import JobType, job_type_registry

            class NoopJobType(JobType):
                type = JOB_TYPE
                model_class = Job
                max_count = 10**9

                def run(self, job, progress) -> None:
                    return None

            job_type_registry.register(NoopJobType())

    _counts = [0, 0]  # statements, connects: of this process, since it started

    class _Counting:
        """Counts, in the process that runs each job, the Django statements and connects it makes."""

        def work(self, *args, **kwargs):
            from django.db.backends import utils
            from django.db.backends.base.base import BaseDatabaseWrapper

            for name in ("execute", "executemany"):
                original = getattr(utils.CursorWrapper, name)

                def counted(self, *a, _original=original, **kw):
                    _counts[0] += 1
                    return _original(self, *a, **kw)

                setattr(utils.CursorWrapper, name, counted)
            connect = BaseDatabaseWrapper.connect

            def counted_connect(self):
                _counts[1] += 1
                return connect(self)

            BaseDatabaseWrapper.connect = counted_connect
            return super().work(*args, **kwargs)

        def perform_job(self, *args, **kwargs):
            before = list(_counts)
            try:
                return super().perform_job(*args, **kwargs)
            finally:
                with self.connection.pipeline() as pipe:
                    pipe.incrby(STATEMENTS_KEY, _counts[0] - before[0])
                    pipe.incrby(CONNECTS_KEY, _counts[1] - before[1])
                    pipe.execute()

    class CountingFork(_Counting, Worker):
        pass

    class CountingSimple(_Counting, SimpleWorker):
        pass


# ── Role 1: the driver (``__main__``) ─────────────────────────────────────────────────

SETUPS = {"fork": "rq.Worker", "simple": "rq.SimpleWorker"}


def main() -> None:
    import argparse
    import json
    import platform
    import signal
    import statistics
    import subprocess
    import sys
    import time
    import uuid
    from contextlib import contextmanager
    from pathlib import Path

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--setups", default="fork,simple", help="comma-separated: fork, simple")
    parser.add_argument("--db", default="ferry_bench_rq")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    setups = [s.strip() for s in args.setups.split(",") if s.strip()]
    unknown = set(setups) - set(SETUPS)
    if unknown:
        sys.exit(f"unknown setups {sorted(unknown)}; choose from {', '.join(SETUPS)}")

    load_before = os.getloadavg()
    here = str(Path(__file__).resolve().parent)
    sys.path.insert(0, here)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="bench_rq",
        BENCH_DB=args.db,
        PYTHONPATH=os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p),
    )

    import psycopg

    admin_dsn = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {args.db} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {args.db}")

    import django

    django.setup()
    import redis
    from django.core.management import call_command
    from django.db import connection
    from rq import Queue

    from task_ferry.handler import JobHandler
    from task_ferry.models import Job
    from task_ferry_rq.executor import FAILURE_TTL

    call_command("migrate", verbosity=0)
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    queue = Queue(QUEUE, connection=client)

    @contextmanager
    def workers(worker_class: str, count: int):
        names = [f"bench-{uuid.uuid4().hex[:8]}" for _ in range(count)]
        env = {**os.environ, "BENCH_WORKER_CLASS": worker_class}
        cmd = [sys.executable, "-m", "django", "ferry_rqworker", QUEUE, "--logging-level", "WARNING", "--name"]
        procs = [subprocess.Popen([*cmd, name], env=env) for name in names]
        try:
            deadline = time.monotonic() + 60
            while not all(client.exists(f"rq:worker:{name}") for name in names):
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise SystemExit("the RQ workers did not start")
                time.sleep(0.05)
            yield names
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.wait(60)

    def successes(names: list[str]) -> int:
        with client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hget(f"rq:worker:{name}", "successful_job_count")
            return sum(int(v or 0) for v in pipe.execute())

    def wait_for(names: list[str], target: int, timeout: float = 900.0) -> None:
        deadline = time.monotonic() + timeout
        while successes(names) < target:
            if time.monotonic() > deadline:
                raise SystemExit(f"the workers did not finish in {timeout}s")
            time.sleep(0.005)

    def run_raw(names: list[str], n: int) -> float:
        target = successes(names) + n
        t0 = time.perf_counter()
        for i in range(n):
            queue.enqueue_call("bench_rq.noop", args=(i,), result_ttl=0, failure_ttl=FAILURE_TTL, timeout=-1)
        wait_for(names, target)
        return time.perf_counter() - t0

    def run_ours(names: list[str], n: int, how: str) -> float:
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {Job._meta.db_table} CASCADE")
        target = successes(names) + n
        t0 = time.perf_counter()
        if how == "create_many":
            JobHandler.create_many(None, JOB_TYPE, [{} for _ in range(n)])
        else:
            for _ in range(n):
                JobHandler.create_and_start(None, JOB_TYPE)
        wait_for(names, target)
        elapsed = time.perf_counter() - t0
        finished = Job.objects.filter(state="finished").count()
        if finished != n:
            raise SystemExit(f"{how}: only {finished} of {n} jobs finished")
        return elapsed

    kinds = ["raw", "create_and_start", "create_many"]
    results: dict = {}
    for setup in setups:
        print(f"{setup}: timing ...", file=sys.stderr)
        seconds: dict[str, list[float]] = {k: [] for k in kinds}
        with workers(SETUPS[setup], args.workers) as names:
            run_raw(names, 100)
            run_ours(names, 100, "create_and_start")
            run_ours(names, 100, "create_many")
            for _ in range(args.runs):
                seconds["raw"].append(run_raw(names, args.jobs))
                for how in kinds[1:]:
                    seconds[how].append(run_ours(names, args.jobs, how))
        print(f"{setup}: counting statements ...", file=sys.stderr)
        counted = 500
        client.delete(STATEMENTS_KEY, CONNECTS_KEY)
        with workers(f"bench_rq.Counting{setup.title()}", 1) as names:
            run_ours(names, counted, "create_many")
        results[setup] = {
            "seconds": seconds,
            "jobs_per_s": {k: args.jobs / statistics.median(v) for k, v in seconds.items()},
            "statements_per_job": int(client.get(STATEMENTS_KEY) or 0) / counted,
            "connects_per_job": int(client.get(CONNECTS_KEY) or 0) / counted,
        }

    connection.close()
    client.flushdb()
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {args.db} WITH (FORCE)")

    from importlib.metadata import version

    data = {
        "jobs": args.jobs,
        "runs": args.runs,
        "workers": args.workers,
        "results": results,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "versions": {
            "python": sys.version.split()[0],
            **{n: version(n) for n in ("rq", "redis", "django", "psycopg", "task-ferry-core", "task-ferry-rq")},
        },
    }
    print(_table(data))
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=2))


def _table(data: dict) -> str:
    header = ("", "jobs/s", "ours / raw time", "DB statements / job", "DB connects / job")
    rows = []
    verdicts = []
    for setup, r in data["results"].items():
        raw = r["jobs_per_s"]["raw"]
        rows.append((f"{setup}: raw RQ no-op jobs", f"{raw:,.0f}", "1.00x", "-", "-"))
        for how in ("create_and_start", "create_many"):
            rate = r["jobs_per_s"][how]
            stmts, conns = f"{r['statements_per_job']:.2f}", f"{r['connects_per_job']:.2f}"
            rows.append((f"{setup}: ours, {how}", f"{rate:,.0f}", f"{raw / rate:.2f}x", stmts, conns))
        cost = raw / r["jobs_per_s"]["create_and_start"]
        verdicts.append(
            f"{'PASS' if cost <= 1.5 else 'MISS'}  {setup}: raw / ours create_and_start <= 1.5x: {cost:.2f}x"
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    v = data["versions"]
    before, after = (" ".join(f"{x:.2f}" for x in data[k]) for k in ("load_before", "load_after"))
    lines += [
        "",
        *verdicts,
        "",
        f"{data['jobs']:,} jobs per run, median of {data['runs']} runs; {data['workers']} RQ workers "
        f"(manage.py ferry_rqworker), Redis, PostgreSQL",
        f"{data['cpu_count']} cores, {data['platform']}; load average (1/5/15 min) before {before}, after {after}",
        f"Python {v['python']}, rq {v['rq']}, redis-py {v['redis']}, Django {v['django']}, psycopg {v['psycopg']}, "
        f"task-ferry-core {v['task-ferry-core']}, task-ferry-rq {v['task-ferry-rq']}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
