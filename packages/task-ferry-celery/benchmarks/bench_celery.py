"""Benchmark: no-op jobs end to end through Celery, tracked and raw, ours and django-task-ferry 0.1.1.

    /work/main/.venv/bin/python packages/task-ferry-celery/benchmarks/bench_celery.py [--jobs 2000] [--runs 3]

What is measured, each with a real ``celery worker --pool prefork --concurrency 2``
on Redis (redis://127.0.0.1:6379/5, flushed; ``BENCH_BROKER_URL`` overrides it) and PostgreSQL (database
``ferry_bench_celery`` on 127.0.0.1:5432, created and dropped here):

``raw``
    ``--jobs`` calls of ``noop.apply_async(args=[i], queue="bench")``, a task that does
    nothing (``acks_late=True, ignore_result=True``, the options of both ferry tasks).
``ours, create_many`` / ``ours, create_and_start``
    task-ferry-core + task-ferry-celery: ``JobHandler.create_many(None, "bench_noop",
    [{}] * jobs)`` (one transaction, dispatched at commit), or ``create_and_start`` in a
    loop; the worker runs ``task_ferry.run_job`` -> ``run_job``. Default settings
    (``PROGRESS_STORE`` ``"database"``).
``0.1.1, create_and_start``
    django-task-ferry 0.1.1 (its own virtualenv, ``benchmarks/.venvs/ferry011-celery``,
    with the same Celery, Django, redis-py and psycopg) through its ``CeleryExecutor``;
    0.1.1 has no bulk creation. ``CACHES`` is Django's ``RedisCache`` (0.1.1 keeps
    progress and the cancel flag there).

Each figure is the median of ``--runs`` timed runs: from the first dispatch until the
broker holds no message of the queue, neither waiting nor unacknowledged (every task
is ``acks_late``, so a message is acknowledged only after its task returned), then
checked against the database (every job ``finished``). Raw runs are interleaved with
ours in the same driver (and with 0.1.1's in its own), so the ratios compare figures
taken under the same machine load. A warm-up of 100 precedes the timed runs. Both
sides use ``CONN_MAX_AGE = None``: with Django's default 0, Celery's Django fix-up
closes the connection after every task and each job pays a reconnect.

DB statements per job run are counted in a separate, untimed pass with a fresh worker:
every statement any Django connection of a pool process sends (``CursorWrapper.execute``
/ ``executemany`` patched, so the ``database`` store's own connection counts too),
summed per task in ``task_prerun`` / ``task_postrun``; and, apart, the explicit
transactions (``BaseDatabaseWrapper._commit`` / ``_rollback``; each is a ``BEGIN`` and a
``COMMIT`` round trip more, on PostgreSQL). Statements Django sends when it opens a
connection (the time zone) count too, which is what a reconnect per task costs in
statements. 0.1.1's cache round trips to Redis are not counted.

``--profile``: also profile ours in the worker's pool processes (cProfile around each
task) and print the top functions by cumulative time.

Results: a table on stdout and JSON in ``benchmarks/results/celery-<timestamp>.json``.
"""

from __future__ import annotations

import os

BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/5")
QUEUE = "bench"
JOB_TYPE = "bench_noop"
COUNT_KEY = "bench:statements"
PROFILE_DIR_ENV = "BENCH_PROFILE_DIR"

# ── Roles 2 and 3: Django settings module and Celery app (imported as ``bench_celery``) ──

FLAVOUR = os.environ.get("BENCH_FLAVOUR")  # "ours" or "ferry011"; unset in the orchestrator
if FLAVOUR:
    SECRET_KEY = "bench"
    DEBUG = False
    USE_TZ = True
    DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
    INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "task_ferry"]
    if FLAVOUR == "ours":
        INSTALLED_APPS.append("task_ferry_celery")
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
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": BROKER_URL,
            "KEY_PREFIX": "bench",
        }
    }
    if FLAVOUR == "ours":
        TASK_FERRY = {"EXECUTOR": {"BACKEND": "celery", "OPTIONS": {"APP": "bench_celery:app"}}, "DEFAULT_QUEUE": QUEUE}
    else:
        TASK_FERRY = {"EXECUTOR": "task_ferry.executors.celery.CeleryExecutor", "CELERY_QUEUE": QUEUE}
    LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}

    from celery import Celery, signals

    app = Celery("bench_celery", broker=BROKER_URL)
    app.conf.broker_connection_retry_on_startup = True
    if os.environ.get("BENCH_DB_REUSE_MAX"):
        # Celery's Django fix-up closes every connection before and after each task unless this is set.
        app.conf.CELERY_DB_REUSE_MAX = int(os.environ["BENCH_DB_REUSE_MAX"])
    app.autodiscover_tasks()  # 0.1.1's task_ferry.tasks; ours registers its task in AppConfig.ready()

    @app.task(name="bench.noop", acks_late=True, ignore_result=True)
    def noop(i: int) -> None:
        return None

    def register_types() -> None:
        from task_ferry.models import Job
        from task_ferry.registry import JobType, job_type_registry

        class NoopJobType(JobType):
            type = JOB_TYPE
            model_class = Job
            max_count = 10**9

            def run(self, job, progress) -> None:
                return None

        job_type_registry.register(NoopJobType())

    @signals.worker_init.connect
    def _worker_init(**kwargs) -> None:
        register_types()  # before the pool forks: every process inherits the type

    if os.environ.get("BENCH_COUNT_STATEMENTS"):
        _statements = [0, 0, 0, 0]  # statements, transactions; both at task start

        @signals.worker_process_init.connect
        def _count_statements(**kwargs) -> None:
            from django.db.backends import utils

            for name in ("execute", "executemany"):
                original = getattr(utils.CursorWrapper, name)

                def counted(self, *args, _original=original, **kw):
                    _statements[0] += 1
                    return _original(self, *args, **kw)

                setattr(utils.CursorWrapper, name, counted)
            from django.db.backends.base.base import BaseDatabaseWrapper

            for name in ("_commit", "_rollback"):
                original = getattr(BaseDatabaseWrapper, name)

                def ended(self, *args, _original=original, **kw):
                    _statements[1] += 1
                    return _original(self, *args, **kw)

                setattr(BaseDatabaseWrapper, name, ended)

        @signals.task_prerun.connect
        def _mark(**kwargs) -> None:
            _statements[2:] = _statements[:2]

        @signals.task_postrun.connect
        def _report(**kwargs) -> None:
            import redis

            with redis.Redis.from_url(BROKER_URL).pipeline(transaction=False) as pipe:
                pipe.incrby(COUNT_KEY, _statements[0] - _statements[2])
                pipe.incrby(COUNT_KEY + ":tx", _statements[1] - _statements[3])
                pipe.execute()

    if os.environ.get(PROFILE_DIR_ENV):
        import cProfile

        _profiler = cProfile.Profile()

        @signals.task_prerun.connect
        def _profile_on(**kwargs) -> None:
            _profiler.enable()

        @signals.task_postrun.connect
        def _profile_off(**kwargs) -> None:
            _profiler.disable()

        @signals.worker_process_shutdown.connect
        def _profile_dump(**kwargs) -> None:
            _profiler.dump_stats(os.path.join(os.environ[PROFILE_DIR_ENV], f"worker-{os.getpid()}.pstats"))


# ── Role 1: the driver, inside one flavour's Python (``--role driver``) ────────────────


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children (the worker and its pool), from /proc."""
    pids = [pid]
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                pids += [int(c) for c in f.read().split()]
        except FileNotFoundError:
            pass
    ticks = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _driver(args) -> None:
    import json
    import statistics
    import subprocess
    import sys
    import time
    from contextlib import contextmanager
    from pathlib import Path

    os.environ["DJANGO_SETTINGS_MODULE"] = "bench_celery"
    os.environ["BENCH_FLAVOUR"] = args.flavour
    os.environ["BENCH_DB"] = args.db
    if args.reuse:
        os.environ["BENCH_DB_REUSE_MAX"] = str(args.reuse)
    here = str(Path(__file__).resolve().parent)
    sys.path.insert(0, here)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)

    import psycopg

    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {args.db} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {args.db}")

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)

    import bench_celery
    import redis

    bench_celery.register_types()
    from task_ferry.handler import JobHandler
    from task_ferry.models import Job

    client = redis.Redis.from_url(BROKER_URL)
    client.flushdb()
    keys = [QUEUE] + [f"{QUEUE}\x06\x16{p}" for p in range(1, 10)]

    def drained() -> bool:
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.llen(key)
            pipe.hlen("unacked")
            return not any(pipe.execute())

    def wait_drained(timeout: float = 900.0) -> None:
        deadline = time.monotonic() + timeout
        while not drained():
            if time.monotonic() > deadline:
                raise SystemExit("the worker did not drain the queue in time; is it running?")
            time.sleep(0.01)

    def truncate() -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {Job._meta.db_table} CASCADE")

    @contextmanager
    def worker(extra_env: dict | None = None):
        cmd = [sys.executable, "-m", "celery", "-A", "bench_celery:app", "worker", "--pool", "prefork",
               "--concurrency", "2", "-Q", QUEUE, "--without-gossip", "--without-mingle",
               "--without-heartbeat", "--loglevel", "WARNING", "-n", f"bench-{os.getpid()}@localhost"]  # fmt: skip
        proc = subprocess.Popen(cmd, env={**os.environ, **(extra_env or {})})
        try:
            deadline = time.monotonic() + 60
            while not bench_celery.app.control.ping(timeout=0.5):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the Celery worker did not start")
            yield proc
        finally:
            proc.terminate()
            proc.wait(60)

    def dispatch(n: int, how: str) -> None:
        if how == "raw":
            for i in range(n):
                bench_celery.noop.apply_async(args=[i], queue=QUEUE)
        elif how == "create_many":
            JobHandler.create_many(None, JOB_TYPE, [{} for _ in range(n)])
        else:
            for _ in range(n):
                JobHandler.create_and_start(None, JOB_TYPE)

    def run(proc, n: int, how: str) -> dict:
        """One timed run: wall seconds, and CPU seconds of the worker (with its pool) and of this driver."""
        truncate()
        worker_cpu, driver_cpu, t0 = _cpu_seconds(proc.pid), time.process_time(), time.perf_counter()
        dispatch(n, how)
        wait_drained()
        elapsed = time.perf_counter() - t0
        sample = {
            "seconds": elapsed,
            "worker_cpu": _cpu_seconds(proc.pid) - worker_cpu,
            "driver_cpu": time.process_time() - driver_cpu,
        }
        if how != "raw" and (finished := Job.objects.filter(state="finished").count()) != n:
            raise SystemExit(f"{how}: only {finished} of {n} jobs finished")
        return sample

    kinds = ["raw", "create_and_start"] + (["create_many"] if args.flavour == "ours" else [])
    samples: dict[str, list[dict]] = {k: [] for k in kinds}
    with worker() as proc:
        for how in kinds:
            run(proc, 100, how)  # warm-up: imports, connections, first-use caches
        for _ in range(args.runs):
            for how in kinds:  # interleaved, so a change in machine load hits every kind alike
                samples[how].append(run(proc, args.jobs, how))

    # Untimed: statements per job run, counted inside the pool processes.
    counted = min(args.jobs, 500)
    client.delete(COUNT_KEY, COUNT_KEY + ":tx")
    with worker({"BENCH_COUNT_STATEMENTS": "1"}) as proc:
        run(proc, counted, "create_many" if args.flavour == "ours" else "create_and_start")
        time.sleep(0.2)  # the last task_postrun runs just after its ack
    statements = int(client.get(COUNT_KEY) or 0) / counted
    transactions = int(client.get(COUNT_KEY + ":tx") or 0) / counted

    if args.profile_dir:
        with worker({PROFILE_DIR_ENV: args.profile_dir}) as proc:
            run(proc, args.jobs, "create_many" if args.flavour == "ours" else "create_and_start")

    from importlib.metadata import version

    def ver(name: str) -> str:
        try:
            return version(name)
        except Exception:
            return "-"

    def median(how: str, key: str) -> float:
        return statistics.median(s[key] for s in samples[how])

    result = {
        "flavour": args.flavour,
        "db_reuse_max": args.reuse,
        "jobs": args.jobs,
        "runs": args.runs,
        "samples": samples,
        "jobs_per_s": {k: args.jobs / median(k, "seconds") for k in kinds},
        "worker_cpu_ms_per_job": {k: 1000 * median(k, "worker_cpu") / args.jobs for k in kinds},
        "driver_cpu_ms_per_job": {k: 1000 * median(k, "driver_cpu") / args.jobs for k in kinds},
        "statements_per_job": statements,
        "transactions_per_job": transactions,
        "versions": {
            "python": sys.version.split()[0],
            **{n: ver(n) for n in ("celery", "kombu", "django", "psycopg", "redis")},
            "package": ver("task-ferry-core") if args.flavour == "ours" else ver("django-task-ferry"),
            "plugin": ver("task-ferry-celery") if args.flavour == "ours" else "-",
        },
    }
    Path(args.out).write_text(json.dumps(result, indent=2))
    connection.close()
    client.flushdb()
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {args.db} WITH (FORCE)")


# ── Role 0: the orchestrator ───────────────────────────────────────────────────────────


def _main() -> None:
    import argparse
    import json
    import subprocess
    import sys
    import tempfile
    import time
    from pathlib import Path

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--reuse", type=int, default=1000, help="CELERY_DB_REUSE_MAX of the second configuration")
    parser.add_argument("--skip-011", action="store_true", help="measure ours and raw only")
    parser.add_argument("--profile", action="store_true", help="also profile ours' pool processes")
    parser.add_argument("--role", default="main", choices=["main", "driver"], help=argparse.SUPPRESS)
    parser.add_argument("--flavour", help=argparse.SUPPRESS)
    parser.add_argument("--db", default="ferry_bench_celery", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--profile-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "driver":
        _driver(args)
        return

    root = Path(__file__).resolve().parents[3]
    try:
        out = subprocess.run(
            [sys.executable, "-c", "import task_ferry_celery, psycopg, redis; from importlib.metadata import version; "
             "print(' '.join(version(n) for n in ('celery', 'django', 'redis', 'psycopg')))"],
            check=True, capture_output=True, text=True,
        ).stdout.split()  # fmt: skip
    except subprocess.CalledProcessError as exc:
        sys.exit(f"run this with a Python that has task-ferry-celery, psycopg and redis installed:\n{exc.stderr}")
    celery_v, django_v, redis_v, psycopg_v = out

    def side(python: str, flavour: str, reuse: int, work: Path, profile: bool = False) -> dict:
        print(f"running {flavour}, CELERY_DB_REUSE_MAX={reuse or 'unset'} ...", file=sys.stderr)
        out_file = work / f"{flavour}-{reuse}.json"
        cmd = [python, __file__, "--role", "driver", "--flavour", flavour, "--out", str(out_file),
               "--jobs", str(args.jobs), "--runs", str(args.runs), "--reuse", str(reuse)]  # fmt: skip
        if profile:
            cmd += ["--profile-dir", str(work)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_") and k != "DJANGO_SETTINGS_MODULE"}
        subprocess.run(cmd, check=True, env=env)
        return json.loads(out_file.read_text())

    data: dict = {"load_before": os.getloadavg(), "machine": _machine(), "configs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        old_python = None
        if not args.skip_011:
            venv = root / "benchmarks" / ".venvs" / "ferry011-celery"
            reqs = ["django-task-ferry==0.1.1", f"celery[redis]=={celery_v}", f"django=={django_v}",
                    f"redis=={redis_v}", f"psycopg[binary]=={psycopg_v}"]  # fmt: skip
            marker = venv / ".requirements"
            if not (marker.exists() and marker.read_text() == "\n".join(reqs)):
                print(f"setting up {venv} ...", file=sys.stderr)
                subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
                subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *reqs], check=True)
                marker.write_text("\n".join(reqs))
            old_python = str(venv / "bin" / "python")
        for reuse in (0, args.reuse):
            config = {"ours": side(sys.executable, "ours", reuse, work, profile=args.profile and reuse > 0)}
            if old_python:
                config["ferry011"] = side(old_python, "ferry011", reuse, work)
            data["configs"][str(reuse)] = config
        if args.profile:
            data["profile"] = _profile_report(work)
    data["load_after"] = os.getloadavg()
    data["table"] = _table(data, args)
    results = root / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"celery-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(data, indent=2))
    print(data["table"])
    if args.profile:
        print("\n" + data["profile"])
    print(f"\nJSON: {path.relative_to(root)}")


def _machine() -> dict:
    import platform
    from pathlib import Path

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "os": platform.platform()}


def _profile_report(work) -> str:
    import io
    import pstats

    files = [str(p) for p in work.glob("worker-*.pstats")]
    if not files:
        return "(no profile written)"
    buffer = io.StringIO()
    stats = pstats.Stats(*files, stream=buffer)
    stats.sort_stats("cumulative").print_stats(40)
    stats.sort_stats("tottime").print_stats(25)
    return buffer.getvalue()


def _table(data: dict, args) -> str:
    header = ("", "jobs/s", "raw/this", "worker CPU ms/job", "raw/this", "DB statements + transactions / job")
    rows: list[tuple[str, ...]] = []
    checks: list[str] = []
    for reuse, config in data["configs"].items():
        title = (
            f"CELERY_DB_REUSE_MAX = {reuse}"
            if int(reuse)
            else "Celery's defaults (connections closed around every task)"
        )
        rows.append((title, "", "", "", "", ""))
        for flavour, label in (("ours", "ours"), ("ferry011", "0.1.1")):
            side = config.get(flavour)
            if side is None:
                continue
            rate, cpu = side["jobs_per_s"], side["worker_cpu_ms_per_job"]
            rows.append((f"  raw Celery no-op task (same run as {label})", f"{rate['raw']:,.0f}", "1.00x",
                         f"{cpu['raw']:.2f}", "1.00x", "0"))  # fmt: skip
            for how in ("create_many", "create_and_start"):
                if how in rate:
                    rows.append((f"  {label}, {how}", f"{rate[how]:,.0f}", f"{rate['raw'] / rate[how]:.2f}x",
                                 f"{cpu[how]:.2f}", f"{cpu[how] / cpu['raw']:.2f}x",
                                 f"{side['statements_per_job']:.1f} + {side['transactions_per_job']:.1f}"))  # fmt: skip
        ours, old = config["ours"]["jobs_per_s"], config.get("ferry011", {}).get("jobs_per_s")
        for how in ("create_many", "create_and_start"):
            cost = ours["raw"] / ours[how]
            checks.append(
                f"{'PASS' if cost <= 1.5 else 'MISS'}  {title}: raw / ours {how} = {cost:.2f}x (target <= 1.5x)"
            )
        if old:
            checks.append(
                f"      {title}: ours create_and_start / 0.1.1 create_and_start = "
                f"{ours['create_and_start'] / old['create_and_start']:.2f}x, "
                f"raw / 0.1.1 = {old['raw'] / old['create_and_start']:.2f}x"
            )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = [line(header), "  ".join("-" * w for w in widths), *map(line, rows), "", *checks]
    first = next(iter(data["configs"].values()))
    m, v = data["machine"], first["ours"]["versions"]
    before, after = (" ".join(f"{x:.2f}" for x in data[k]) for k in ("load_before", "load_after"))
    out += [
        "",
        f"{args.jobs:,} jobs per run, median of {args.runs} runs; celery worker --pool prefork --concurrency 2, "
        "Redis broker, PostgreSQL; worker CPU = user+system of the worker and its pool",
        f"machine: {m['cpu']}, {m['cores']} cores, {m['os']}; load average (1/5/15 min) before {before}, after {after}",
        f"Python {v['python']}, Celery {v['celery']}, kombu {v['kombu']}, Django {v['django']}, "
        f"redis-py {v['redis']}, psycopg {v['psycopg']}; ours: task-ferry-core {v['package']}, "
        f"task-ferry-celery {v['plugin']}"
        + ("; 0.1.1: django-task-ferry " + first["ferry011"]["versions"]["package"] if "ferry011" in first else ""),
    ]
    return "\n".join(out)


if __name__ == "__main__":
    _main()
