"""Benchmark: no-op jobs end to end through Dramatiq, tracked (task-ferry) and raw.

    /work/main/.venv/bin/python packages/task-ferry-dramatiq/benchmarks/bench_dramatiq.py [--jobs 2000] [--runs 3]

Both sides run on one real worker, ``dramatiq bench_dramatiq:broker task_ferry_dramatiq.worker
--processes 2 --threads 1`` (``--processes`` / ``--threads`` change it), on Redis
(redis://127.0.0.1:6379/6, flushed) and PostgreSQL (database ``ferry_bench_dramatiq`` on
127.0.0.1:5432, created and dropped here):

``raw``
    ``--jobs`` calls of ``noop.send(i)`` to queue ``bench_raw``: an actor that does nothing
    (``max_retries=0``).
``ours, create_many`` / ``ours, create_and_start``
    task-ferry-core + task-ferry-dramatiq: ``JobHandler.create_many(None, "bench_noop",
    [{}] * jobs)`` (one transaction, dispatched at commit), or ``create_and_start`` in a loop;
    the worker runs the actor ``task_ferry_run_job`` -> core's ``run_job``. Default settings
    (``PROGRESS_STORE`` ``"database"``), queue ``bench``.

Each figure is the median of ``--runs`` timed runs: from the first send until the broker holds
no message of the queue, waiting or unacknowledged (Dramatiq's Redis broker keeps a message in
``dramatiq:<queue>.msgs`` until the worker acknowledges it, after the actor returned), then
checked against the database (every job ``finished``). Raw and tracked runs alternate on the
same worker, so the ratio compares figures taken under the same machine load; a warm-up of 100
of each comes first. ``CONN_MAX_AGE = None`` (persistent connections, as a deployment sets it):
with Django's default 0 the actor closes the connection after each job, as Django does after
each request, and every job pays a reconnect (``--conn-max-age 0`` measures that).

DB statements per job run are counted in a separate, untimed pass with a fresh worker
(``--threads 1``): every statement any Django connection of a worker process sends
(``CursorWrapper.execute`` / ``executemany`` patched, so the ``database`` store's own
connection counts too), summed per message by a middleware (``before_process_message`` /
``after_process_message``) into Redis. ``BEGIN`` / ``COMMIT`` sent by the driver itself
(psycopg, on ``atomic()``) are not cursor statements and are not counted. The statements the
sending side spends per job (``create_many``) are counted with Django's query log.
"""

from __future__ import annotations

import os

BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/6")
QUEUE = "bench"
RAW_QUEUE = "bench_raw"
JOB_TYPE = "bench_noop"
COUNT_KEY = "bench:statements"
COUNT_ENV = "BENCH_COUNT_STATEMENTS"

# ── Role 2: Django settings, Dramatiq broker and app (imported as ``bench_dramatiq``) ──

if os.environ.get("BENCH_DB"):
    import dramatiq
    from django.apps import AppConfig
    from dramatiq.brokers.redis import RedisBroker

    SECRET_KEY = "bench"
    DEBUG = False
    USE_TZ = True
    DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
    INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "task_ferry", "bench_dramatiq.BenchConfig"]
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": "127.0.0.1",
            "PORT": "5432",
            "USER": "postgres",
            "NAME": os.environ["BENCH_DB"],
            "CONN_MAX_AGE": None if os.environ.get("BENCH_CONN_MAX_AGE", "none") == "none" else 0,
        }
    }
    TASK_FERRY = {
        "EXECUTOR": {"BACKEND": "dramatiq", "OPTIONS": {"BROKER": "bench_dramatiq:broker"}},
        "DEFAULT_QUEUE": QUEUE,
    }
    LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}

    broker = RedisBroker(url=BROKER_URL)

    @dramatiq.actor(broker=broker, queue_name=RAW_QUEUE, actor_name="bench_noop", max_retries=0)
    def noop(i: int) -> None:
        return None

    class BenchConfig(AppConfig):
        name = "bench_dramatiq"
        label = "bench_dramatiq"

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

    if os.environ.get(COUNT_ENV):

        class CountStatements(dramatiq.Middleware):
            """Adds, per message, the statements this worker process sent to Redis (one thread per process)."""

            def __init__(self) -> None:
                self.total = self.at_start = 0
                self.client = None

            def after_process_boot(self, broker) -> None:
                from django.db.backends import utils

                middleware = self
                for name in ("execute", "executemany"):
                    original = getattr(utils.CursorWrapper, name)

                    def counted(self, *args, _original=original, **kw):
                        middleware.total += 1
                        return _original(self, *args, **kw)

                    setattr(utils.CursorWrapper, name, counted)

            def before_process_message(self, broker, message) -> None:
                self.at_start = self.total

            def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
                import redis

                if self.client is None:
                    self.client = redis.Redis.from_url(BROKER_URL)
                self.client.incrby(COUNT_KEY, self.total - self.at_start)

        broker.add_middleware(CountStatements())


# ── Role 1: the driver ─────────────────────────────────────────────────────────────────


def _main() -> None:
    import argparse
    import json
    import statistics
    import subprocess
    import sys
    import time
    from contextlib import contextmanager
    from pathlib import Path

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--conn-max-age", choices=["none", "0"], default="none")
    parser.add_argument("--db", default="ferry_bench_dramatiq")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    here = str(Path(__file__).resolve().parent)
    sys.path.insert(0, here)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="bench_dramatiq",
        BENCH_DB=args.db,
        BENCH_CONN_MAX_AGE=args.conn_max_age,
        PYTHONPATH=os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p),
    )
    load_before = os.getloadavg()

    import psycopg

    admin_dsn = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {args.db} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {args.db}")

    import django

    django.setup()
    import bench_dramatiq
    import redis
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from task_ferry.handler import JobHandler
    from task_ferry.models import Job

    call_command("migrate", verbosity=0)
    client = redis.Redis.from_url(BROKER_URL)
    client.flushdb()

    def wait_drained(queue: str, timeout: float = 600.0) -> None:
        key = f"dramatiq:{queue}.msgs"  # a message leaves this hash when the worker acknowledges it
        deadline = time.monotonic() + timeout
        while client.hlen(key):
            if time.monotonic() > deadline:
                raise SystemExit(f"the worker did not drain {queue!r} in time; is it running?")
            time.sleep(0.01)

    @contextmanager
    def worker(threads: int, extra_env: dict | None = None):
        cmd = [sys.executable, "-m", "dramatiq", "bench_dramatiq:broker", "task_ferry_dramatiq.worker",
               "--processes", str(args.processes), "--threads", str(threads), "--queues", QUEUE, RAW_QUEUE,
               "--worker-shutdown-timeout", "10000"]  # fmt: skip
        proc = subprocess.Popen(cmd, env={**os.environ, **(extra_env or {})}, cwd=here)
        try:
            # Ready when a message sent now is processed.
            bench_dramatiq.noop.send(-1)
            wait_drained(RAW_QUEUE, timeout=60)
            yield proc
        finally:
            proc.terminate()
            proc.wait(60)

    def run_raw(n: int) -> float:
        t0 = time.perf_counter()
        for i in range(n):
            bench_dramatiq.noop.send(i)
        wait_drained(RAW_QUEUE)
        return time.perf_counter() - t0

    def run_jobs(n: int, how: str) -> float:
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {Job._meta.db_table} CASCADE")
        t0 = time.perf_counter()
        if how == "create_many":
            JobHandler.create_many(None, bench_dramatiq.JOB_TYPE, [{} for _ in range(n)])
        else:
            for _ in range(n):
                JobHandler.create_and_start(None, bench_dramatiq.JOB_TYPE)
        wait_drained(QUEUE)
        elapsed = time.perf_counter() - t0
        finished = Job.objects.filter(state="finished").count()
        if finished != n:
            raise SystemExit(f"{how}: only {finished} of {n} jobs finished")
        return elapsed

    kinds = ["raw", "create_many", "create_and_start"]
    seconds: dict[str, list[float]] = {k: [] for k in kinds}
    with worker(args.threads):
        run_raw(100)
        run_jobs(100, "create_many")
        run_jobs(100, "create_and_start")
        for _ in range(args.runs):
            seconds["raw"].append(run_raw(args.jobs))
            seconds["create_many"].append(run_jobs(args.jobs, "create_many"))
            seconds["create_and_start"].append(run_jobs(args.jobs, "create_and_start"))

    # Untimed: statements per job run in the worker, and per job on the sending side.
    counted = min(args.jobs, 500)
    client.delete(COUNT_KEY)
    with worker(1, {COUNT_ENV: "1"}):
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {Job._meta.db_table} CASCADE")
        with CaptureQueriesContext(connection) as sent:
            JobHandler.create_many(None, bench_dramatiq.JOB_TYPE, [{} for _ in range(counted)])
        wait_drained(QUEUE)
        time.sleep(0.5)  # the last after_process_message runs just after its ack
    per_run = int(client.get(COUNT_KEY) or 0) / counted
    per_create = len(sent.captured_queries) / counted

    from importlib.metadata import version

    median = {k: statistics.median(v) for k, v in seconds.items()}
    result = {
        "jobs": args.jobs,
        "runs": args.runs,
        "worker": f"--processes {args.processes} --threads {args.threads}",
        "conn_max_age": args.conn_max_age,
        "seconds": seconds,
        "jobs_per_s": {k: args.jobs / v for k, v in median.items()},
        "ratio_to_raw": {k: v / median["raw"] for k, v in median.items()},
        "statements_per_job_run": per_run,
        "statements_per_job_create_many": per_create,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "versions": {
            "python": sys.version.split()[0],
            **{n: version(n) for n in ("dramatiq", "django", "psycopg", "redis", "task-ferry-core")},
            "plugin": version("task-ferry-dramatiq"),
        },
    }
    connection.close()
    client.flushdb()
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {args.db} WITH (FORCE)")

    rows = [("raw dramatiq actor", "raw"), ("ours, create_many", "create_many"),
            ("ours, create_and_start", "create_and_start")]  # fmt: skip
    print(f"\n{args.jobs} no-op jobs, median of {args.runs}, worker {result['worker']}, "
          f"CONN_MAX_AGE={args.conn_max_age}, Redis broker, PostgreSQL")  # fmt: skip
    print(f"{'':26}{'seconds':>10}{'jobs/s':>10}{'x raw':>8}")
    for label, key in rows:
        print(f"{label:26}{median[key]:>10.2f}{result['jobs_per_s'][key]:>10.0f}{result['ratio_to_raw'][key]:>8.2f}")
    print(f"DB statements per job run (worker): {per_run:.2f}; per job created (create_many): {per_create:.3f}")
    print(f"load average before {load_before[0]:.2f} / after {result['load_after'][0]:.2f} "
          f"(1 min; {os.cpu_count()} CPUs)")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    _main()
