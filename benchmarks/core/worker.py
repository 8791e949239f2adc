"""One side of the core benchmark, run inside that side's virtualenv by ``run_core.py``.

    python worker.py --flavour ours|ferry011 --db NAME --out FILE [--phase progress|create] [--runs 5 ...]

Sets up a minimal Django project in code (PostgreSQL database ``--db``, created
here and dropped at the end; Django's ``RedisCache`` on redis://127.0.0.1:6379/14),
runs the workloads and writes the figures as JSON to ``--out``. Every timed figure
is a median: of ``--job-runs`` job runs, of ``--runs`` runs for everything else.

Counting:
- store round trips: every ``redis.Redis.execute_command`` call is one round trip,
  a pipeline's ``execute`` is one (its buffered commands are not counted again);
- DB queries: ``django.test.utils.CaptureQueriesContext`` on the default connection,
  in a separate untimed pass for the creation workloads (capturing is not free).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from contextlib import contextmanager
from importlib import metadata

REDIS_URL = "redis://127.0.0.1:6379/14"
PG = {"HOST": "127.0.0.1", "PORT": "5432", "USER": "postgres"}


class RoundTrips:
    count = 0

    @classmethod
    def install(cls) -> None:
        import redis
        import redis.client

        execute_command = redis.Redis.execute_command
        pipeline_execute = redis.client.Pipeline.execute

        def counted_command(self, *args, **options):
            cls.count += 1
            return execute_command(self, *args, **options)

        def counted_pipeline(self, *args, **kwargs):
            cls.count += 1
            return pipeline_execute(self, *args, **kwargs)

        # Pipeline overrides execute_command (it buffers), so patching Redis does not count buffered commands.
        redis.Redis.execute_command = counted_command
        redis.client.Pipeline.execute = counted_pipeline


def admin_sql(*statements: str) -> None:
    import psycopg

    with psycopg.connect(dbname="postgres", autocommit=True, **{k.lower(): v for k, v in PG.items()}) as conn:
        for sql in statements:
            conn.execute(sql)


def configure(flavour: str, db: str) -> None:
    import django
    from django.conf import settings

    if flavour == "ours":
        ferry = {"EXECUTOR": "benchapp.noop.NoopExecutor", "PROGRESS_STORE": "cache"}  # flush interval: default
    else:
        ferry = {"EXECUTOR": "task_ferry.executors.immediate.ImmediateExecutor"}
    settings.configure(
        DEBUG=False,
        USE_TZ=True,
        SECRET_KEY="bench",
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "task_ferry", "benchapp"],
        DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "NAME": db, **PG}},
        CACHES={"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}},
        TASK_FERRY=ferry,
    )
    django.setup()
    if flavour == "ferry011":
        # As 0.1.1's README shows: keep create_and_start from running the job inline.
        from task_ferry.executors.immediate import ImmediateExecutor

        ImmediateExecutor.enqueue = lambda self, job_id, queue=None: None


def median(values: list[float]) -> float:
    return statistics.median(values)


@contextmanager
def count_queries():
    """``CaptureQueriesContext`` on a fresh query log: the log is a bounded deque that
    outlives each context, so a long-lived log would make its slice come out short."""
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    reset_queries()
    with CaptureQueriesContext(connection) as queries:
        yield queries
    if len(connection.queries_log) >= connection.queries_limit:
        raise RuntimeError(f"more than {connection.queries_limit} queries in one pass; lower --jobs")


def truncate_jobs() -> None:
    from django.db import connection

    from task_ferry.models import Job

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {Job._meta.db_table} CASCADE")


def bench_bare_progress(n: int, runs: int) -> dict:
    """The package's own ``Progress`` with no callback and no store: increments/s."""
    from benchapp.workload import drive

    from task_ferry.progress import Progress

    out = {}
    for name, levels in (("flat", 0), ("nested3", 3)):
        times = []
        for _ in range(runs):
            progress = Progress(100)
            t0 = time.perf_counter()
            drive(progress, n, levels)
            times.append(time.perf_counter() - t0)
        # Recorded, not asserted: 0.1.1 keys child contributions by id(child), and a freed
        # child's id is reused by the next one, so its nested run ends far below 100 %.
        out[name] = {"increments_per_s": n / median(times), "seconds": times, "final_percentage": progress.percentage}
    return out


def bench_job_runs(flavour: str, n: int, runs: int, long_n: int) -> dict:
    """A created job run through the package's real runner path; the job's ``run``
    makes the increments. Store round trips and DB queries are per job run.

    Ours also runs ``long_n`` flat increments: a run that lasts several flush
    intervals, so the coalesced store writes show up in round trips per second
    (0.1.1 would need two round trips per increment, i.e. many minutes)."""
    from benchapp.models import BenchJob

    from task_ferry.handler import JobHandler

    if flavour == "ours":
        from task_ferry.runner import run_job as run
    else:
        run = JobHandler.run_by_id

    workloads = [("flat", 0, n), ("nested3", 3, n)]
    if flavour == "ours" and long_n:
        workloads.append(("long_flat", 0, long_n))
    out = {}
    for name, levels, count in workloads:
        samples = []
        for _ in range(runs):
            job = JobHandler.create_and_start(None, "bench", increments=count, levels=levels)
            RoundTrips.count = 0
            with count_queries() as queries:
                t0 = time.perf_counter()
                run(job.pk)
                elapsed = time.perf_counter() - t0
            trips = RoundTrips.count
            row = BenchJob.objects.get(pk=job.pk)  # the final figure, read back from the database
            samples.append(
                {
                    "seconds": elapsed,
                    "round_trips": trips,
                    "queries": len(queries),
                    "final_state": row.state,
                    "final_percentage": row.progress_percentage,
                }
            )
        seconds = median([s["seconds"] for s in samples])
        trips = median([s["round_trips"] for s in samples])
        out[name] = {
            "increments": count,
            "increments_per_s": count / seconds,
            "seconds": seconds,
            "round_trips_per_job": trips,
            "round_trips_per_s": median([s["round_trips"] / s["seconds"] for s in samples]),
            "queries_per_job": median([s["queries"] for s in samples]),
            "final_100_in_db": all(s["final_state"] == "finished" and s["final_percentage"] == 100 for s in samples),
            "samples": samples,
        }
    return out


def bench_creation(make, jobs: int, runs: int, user) -> dict:
    """``make(user)`` creates ``jobs`` jobs; one untimed pass counts queries, then ``runs`` timed passes."""
    truncate_jobs()
    with count_queries() as queries:
        make(user)
    times = []
    for _ in range(runs):
        truncate_jobs()
        t0 = time.perf_counter()
        make(user)
        times.append(time.perf_counter() - t0)
    truncate_jobs()
    return {
        "jobs_per_s": jobs / median(times),
        "jobs_per_s_each_run": [jobs / t for t in times],
        "queries": len(queries),
        "queries_per_job": len(queries) / jobs,
    }


def bench_create(flavour: str, jobs: int, many: int, runs: int) -> dict:
    from django.contrib.auth.models import User

    from task_ferry.handler import JobHandler

    def create_and_start(user):
        for _ in range(jobs):
            JobHandler.create_and_start(user, "bench", increments=100, levels=0)

    def create_many(user):
        JobHandler.create_many(user, "bench", [{"increments": 100, "levels": 0}] * many)

    user = User.objects.create(username="bench")
    out = {
        "create_and_start": {
            "jobs": jobs,
            "system": bench_creation(create_and_start, jobs, runs, None),
            "user": bench_creation(create_and_start, jobs, runs, user),
        }
    }
    if flavour == "ours":
        out["create_many"] = {
            "jobs": many,
            "system": bench_creation(create_many, many, runs, None),
            "user": bench_creation(create_many, many, runs, user),
        }
    return out


def versions(flavour: str) -> dict:
    from django.core.cache import cache
    from django.db import connection

    package = "task-ferry-core" if flavour == "ours" else "django-task-ferry"
    client = cache._cache.get_client()
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0]
    return {
        "package": f"{package} {metadata.version(package)}",
        "python": platform.python_version(),
        "django": metadata.version("django"),
        "redis-py": metadata.version("redis"),
        "psycopg": metadata.version("psycopg"),
        "redis_server": client.info("server")["redis_version"],
        "postgresql": pg,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flavour", choices=["ours", "ferry011"], required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--phase", choices=["all", "progress", "create"], default="all")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--job-runs", type=int, default=3)
    parser.add_argument("--increments", type=int, default=100_000)
    parser.add_argument("--long", type=int, default=2_000_000, help="increments of ours' long flat job")
    parser.add_argument("--jobs", type=int, default=1_000, help="create_and_start calls per timed pass")
    parser.add_argument("--many", type=int, default=10_000, help="jobs per create_many call")
    args = parser.parse_args()

    admin_sql(f'DROP DATABASE IF EXISTS "{args.db}"', f'CREATE DATABASE "{args.db}"')
    try:
        configure(args.flavour, args.db)
        from django.core.cache import cache
        from django.core.management import call_command
        from django.db import connections

        call_command("migrate", verbosity=0)
        cache.clear()  # FLUSHDB on DB 14 only
        RoundTrips.install()
        result = {
            "flavour": args.flavour,
            "settings": {k: getattr(args, k) for k in ("runs", "job_runs", "increments", "long", "jobs", "many")},
            "versions": versions(args.flavour),
        }
        if args.phase in ("all", "progress"):
            result["bare_progress"] = bench_bare_progress(args.increments, args.runs)
            result["job_run"] = bench_job_runs(args.flavour, args.increments, args.job_runs, args.long)
        if args.phase in ("all", "create"):
            result.update(bench_create(args.flavour, args.jobs, args.many, args.runs))
        if args.flavour == "ours":
            from task_ferry.conf import flush_interval

            result["settings"]["flush_interval"] = flush_interval()
        connections.close_all()
    finally:
        admin_sql(f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=2)
    print(f"{args.flavour}: done", file=sys.stderr)


if __name__ == "__main__":
    main()
