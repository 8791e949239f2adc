"""The engine benchmarks (issues 4 and 5): N no-op jobs end to end through a real worker.

One driver for every engine. A *side* is one way of running no-op work on the engine:

``raw``
    the engine alone: N sends of a task that does nothing (its own virtualenv, no task-ferry);
``ours``
    task-ferry-core + the engine's plugin: ``JobHandler.create_and_start(None, "bench_noop")``
    N times, and ``JobHandler.create_many(None, "bench_noop", [{}] * N)`` (one transaction,
    dispatched at commit); default core settings (``PROGRESS_STORE`` ``"database"``);
``ferry011``
    django-task-ferry 0.1.1 through its own executor for the engine, ``create_and_start``
    (it has no bulk creation);
``floor``
    the raw engine plus the two writes any database-tracked job needs (claim, outcome),
    rows inserted in bulk (``floor``) or one committed INSERT per job (``floor_each``): a
    lower bound for every tracker's ``create_many`` and ``create_and_start``
    (:mod:`ferrybench.floor`).

``python -m ferrybench.engine <engine> --side S --out F.json`` runs one side inside the
interpreter that runs it (the side's virtualenv): it makes the PostgreSQL database
``bench_<engine>_<pid>`` afresh when the side uses Django, flushes the engine's Redis database,
starts the engine's worker(s), sends a warm-up of ``--warmup`` of each kind, then
``--runs`` timed runs of each kind, interleaved. A timed run goes from the first dispatch
until the engine reports every message processed (the engine module says how), then every
job is checked ``finished`` in the database. Then, untimed, a fresh worker counts what one
job run costs the database (:mod:`ferrybench.counting`). :func:`run_sides` runs the sides
one after another, each in its own interpreter, and merges their figures.

An engine module (``ferrybench/engines/<name>.py``) holds an :class:`Engine` subclass as
``ENGINE``: its Django settings per side, its worker command, how to send a raw task, and
when a run is done. It imports its engine only inside methods, so the orchestrator can read
it from any interpreter; what a worker imports by name (a Celery app, a Dramatiq broker)
lives in a module of its own next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]
PG = {"host": "127.0.0.1", "port": "5432", "user": "postgres"}
ISSUES = {"celery": 4, "django-tasks": 4, "rq": 5, "dramatiq": 5}
KINDS = {
    "raw": ["raw"],
    "ours": ["create_and_start", "create_many"],
    "ferry011": ["create_and_start"],
    "floor": ["floor_each", "floor"],  # the counting pass runs the last
}


class Engine:
    """What differs between engines. Subclasses fill in the engine-specific parts."""

    name = ""
    redis_url = ""
    queue = "bench"
    sides = ("raw", "ours")
    title = ""  # the worker set-up, for the table
    flush = True  # flush ``redis_url``'s database before and after a side
    queue_in_database = False  # the engine's queue is in the jobs' database (the floor's writes share a commit)
    #: Options an engine takes from the environment of the driver (and its workers).
    options: dict[str, str] = {}

    def uses_django(self, side: str) -> bool:
        return side != "raw"

    def settings(self, side: str) -> dict:
        """Django settings of ``side`` (only asked when it uses Django)."""
        return base_settings(self, side)

    def worker_commands(self, side: str, counting: bool) -> list[list[str]]:
        raise NotImplementedError

    def ready(self, client, procs) -> bool:
        """True once the workers consume."""
        raise NotImplementedError

    def send_raw(self, n: int) -> None:
        raise NotImplementedError

    def send_floor(self, ids: list[int]) -> None:
        """The floor side (:mod:`ferrybench.floor`): send the engine's ``floor`` task per id."""
        raise NotImplementedError

    def expect(self, client, kind: str, n: int):
        """Called before a run's dispatch: returns a callable that is true once ``n`` more
        messages of ``kind`` have been processed (and acknowledged)."""
        raise NotImplementedError

    def reset(self, client, kind: str) -> None:
        """Between runs (tables of tracked jobs are truncated by the driver)."""


def base_settings(engine: Engine, side: str) -> dict:
    apps = ["django.contrib.contenttypes", "django.contrib.auth", "task_ferry", "ferrybench.apps.BenchConfig"]
    return {
        "SECRET_KEY": "bench",
        "DEBUG": False,
        "USE_TZ": True,
        "DEFAULT_AUTO_FIELD": "django.db.models.BigAutoField",
        "INSTALLED_APPS": apps,
        "DATABASES": {
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "HOST": PG["host"],
                "PORT": PG["port"],
                "USER": PG["user"],
                "NAME": os.environ["BENCH_DB"],
                # Persistent connections, as a worker deployment runs them.
                "CONN_MAX_AGE": None,
            }
        },
        "LOGGING": {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}},
    }


def load_engine(name: str) -> Engine:
    import importlib

    return importlib.import_module(f"ferrybench.engines.{name.replace('-', '_')}").ENGINE


def admin_sql(*statements: str) -> None:
    import psycopg

    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        for sql in statements:
            conn.execute(sql)


def wait_until(done, what: str, timeout: float = 900.0, every: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not done after {timeout:.0f} s; is the worker running?")
        time.sleep(every)


# ── One side, inside its own interpreter ───────────────────────────────────────────────


def drive(engine: Engine, side: str, jobs: int, runs: int, warmup: int, count: int) -> dict:
    import redis

    from .machine import cpu_seconds

    db = f"bench_{engine.name.replace('-', '_')}_{os.getpid()}"  # two runs at once do not drop each other's
    if side != "ours":
        os.environ.pop("BENCH_PROFILE_DIR", None)  # --profile: ours' job runs only
    os.environ.update(BENCH_ENGINE=engine.name.replace("-", "_"), BENCH_SIDE=side, BENCH_DB=db)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(BENCH), os.environ.get("PYTHONPATH")) if p)
    django_side = engine.uses_django(side)
    if django_side:
        os.environ["DJANGO_SETTINGS_MODULE"] = "ferrybench.settings"
        admin_sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)', f'CREATE DATABASE "{db}"')
        if os.environ.get("BENCH_SYNCHRONOUS_COMMIT") == "off":  # takes the WAL flush waits out of the picture
            admin_sql(f'ALTER DATABASE "{db}" SET synchronous_commit = off')
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
    else:
        os.environ.pop("DJANGO_SETTINGS_MODULE", None)
    client = redis.Redis.from_url(engine.redis_url)
    if engine.flush:
        client.flushdb()
    kinds = KINDS[side]

    @contextmanager
    def workers(counting: bool = False):
        env = {**os.environ, **({"BENCH_COUNT": "1"} if counting else {})}
        log = tempfile.TemporaryFile("w+")  # noqa: SIM115 -- the workers' output, closed below
        commands = engine.worker_commands(side, counting)
        procs = [subprocess.Popen(cmd, env=env, cwd=BENCH, stdout=log, stderr=subprocess.STDOUT) for cmd in commands]
        try:
            deadline = time.monotonic() + 90
            while not engine.ready(client, procs):
                if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
                    raise RuntimeError(f"{engine.name} ({side}): the worker did not start")
                time.sleep(0.05)
            yield procs
        except BaseException:
            log.seek(0)
            print(f"--- {engine.name} ({side}) worker output:\n{log.read()[-5000:]}", file=sys.stderr)
            raise
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
            log.close()

    def timed(procs, kind: str, n: int) -> dict:
        engine.reset(client, kind)
        if kind != "raw":
            from django.db import connection

            from task_ferry.models import Job

            with connection.cursor() as cursor:
                cursor.execute(f"TRUNCATE {Job._meta.db_table} CASCADE")
        done = engine.expect(client, kind, n)
        worker_cpu = sum(cpu_seconds(p.pid) for p in procs)
        t0 = time.perf_counter()
        dispatch(engine, kind, n)
        wait_until(done, f"{engine.name} {side} {kind}")
        seconds = time.perf_counter() - t0
        worker_cpu = sum(cpu_seconds(p.pid) for p in procs) - worker_cpu
        if kind != "raw":
            from task_ferry.models import Job

            if (finished := Job.objects.filter(state="finished").count()) != n:
                raise RuntimeError(f"{engine.name} {side} {kind}: only {finished} of {n} jobs finished")
        return {"seconds": seconds, "worker_cpu_s": worker_cpu}

    samples: dict[str, list[dict]] = {k: [] for k in kinds}
    counts = None
    try:
        with workers() as procs:
            for kind in kinds:
                timed(procs, kind, min(warmup, jobs))  # imports, connections, first-use caches
            for _ in range(runs):
                for kind in kinds:  # interleaved: a change in the machine's load hits every kind alike
                    samples[kind].append(timed(procs, kind, jobs))
        if count and django_side:
            from . import counting

            with workers(counting=True) as procs:
                counting.reset(client)  # after the worker's start-up (its readiness probes are no job runs)
                timed(procs, kinds[-1], count)
                wait_until(lambda: counting.read(client)["jobs_counted"] >= count, "counting", timeout=30)
            counts = counting.read(client)
    finally:
        if django_side:
            from django.db import connections

            connections.close_all()
            admin_sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        if engine.flush:
            client.flushdb()
    from .envs import MEASURED

    def version(name: str) -> str | None:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as v

        try:
            return v(name)
        except PackageNotFoundError:
            return None

    return {
        "engine": engine.name,
        "side": side,
        "jobs": jobs,
        "samples": samples,
        "counts": counts,
        "options": {k: os.environ.get(k) for k in engine.options},
        "versions": {n: v for n in MEASURED if (v := version(n))} | {"python": sys.version.split()[0]},
    }


def dispatch(engine: Engine, kind: str, n: int) -> None:
    if kind == "raw":
        engine.send_raw(n)
        return
    if kind in ("floor", "floor_each"):
        from . import floor

        if kind == "floor":
            engine.send_floor(floor.create(n))
        else:
            floor.create_each(n, engine.send_floor, engine.queue_in_database)
        return
    from task_ferry.handler import JobHandler

    from .apps import JOB_TYPE

    if kind == "create_many":
        JobHandler.create_many(None, JOB_TYPE, [{} for _ in range(n)])
    else:
        for _ in range(n):
            JobHandler.create_and_start(None, JOB_TYPE)


# ── Several sides, each in its own interpreter ─────────────────────────────────────────


def run_sides(
    engine: str,
    pythons: dict[str, Path | str],
    *,
    jobs: int,
    runs: int,
    warmup: int = 100,
    count: int = 500,
    env: dict[str, str] | None = None,
    log=sys.stderr,
) -> dict:
    """Each side of ``pythons`` ({side: interpreter}) in turn; the figures of every side."""
    import tempfile

    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix=f"bench-{engine}-") as tmp:
        for side, python in pythons.items():
            print(f"{engine}: {side} ...", file=log, flush=True)
            path = Path(tmp) / f"{side}.json"
            cmd = [str(python), "-m", "ferrybench.engine", engine, "--side", side, "--out", str(path),
                   "--jobs", str(jobs), "--runs", str(runs), "--warmup", str(warmup),
                   "--count", str(min(count, jobs))]  # fmt: skip
            clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")}
            subprocess.run(cmd, check=True, cwd=BENCH, env={**clean, **(env or {}), "PYTHONPATH": str(BENCH)})
            out[side] = summarise(json.loads(path.read_text()))
    return out


def summarise(side: dict) -> dict:
    """Medians of the runs: jobs/s and worker CPU ms per job, per kind."""
    n = side["jobs"]
    side["jobs_per_s"] = {k: n / statistics.median(s["seconds"] for s in v) for k, v in side["samples"].items()}
    side["worker_cpu_ms_per_job"] = {
        k: 1000 * statistics.median(s["worker_cpu_s"] for s in v) / n for k, v in side["samples"].items()
    }
    return side


def rows(engine: str, sides: dict, target: float = 1.5) -> list[dict]:
    """Rows of the one table (:mod:`ferrybench.table`): each tracked kind against the raw
    engine (time ratio, target at most ``target`` times raw's time), ours against 0.1.1 where
    it was measured, and what a job run costs the database."""
    from .table import num

    part = f"{engine} (issue {ISSUES[engine]})" if engine in ISSUES else engine
    raw, ours, old = sides.get("raw"), sides.get("ours"), sides.get("ferry011")
    n = next(iter(sides.values()))["jobs"]
    out = [{"part": part, "measure": f"{load_engine(engine).title}: {n:,} no-op jobs end to end, jobs/s"}]
    raw_rate = raw["jobs_per_s"]["raw"] if raw else None
    for kind in KINDS["ours"]:
        if not ours:
            break
        rate = ours["jobs_per_s"][kind]
        row = {"part": part, "measure": f"  ours {kind} vs raw {engine}", "ours": num(rate)}
        if raw_rate:
            cost = raw_rate / rate
            row |= {"peer": f"{num(raw_rate)} raw", "ratio": f"{cost:.2f}x raw's time",
                    "target": f"<= {target}x: {'PASS' if cost <= target else 'MISS'}"}  # fmt: skip
        out.append(row)
    if old:
        b = old["jobs_per_s"]["create_and_start"]
        row = {"part": part, "measure": "  ours create_and_start vs 0.1.1 create_and_start", "peer": f"{num(b)} 0.1.1"}
        if ours:
            a = ours["jobs_per_s"]["create_and_start"]
            row |= {"ours": num(a), "ratio": f"{a / b:.2f}x 0.1.1"}
        if raw_rate:
            row["note"] = f"0.1.1 takes {raw_rate / b:.2f}x raw's time"
        out.append(row)
    floor = sides.get("floor")
    for kind, ours_kind, how in (("floor", "create_many", "rows inserted in bulk"),
                                 ("floor_each", "create_and_start", "one INSERT committed per job")):  # fmt: skip
        rate = floor["jobs_per_s"].get(kind) if floor else None
        if rate is None:  # a side measured before floor_each existed
            continue
        row = {"part": part, "measure": f"  floor: raw + a claim and an outcome write per job, {how}",
               "ours": "", "peer": num(rate)}  # fmt: skip
        if raw_rate:
            cost = raw_rate / rate
            row |= {"ratio": f"{cost:.2f}x raw's time", "target": f"the least any DB-tracked {ours_kind} adds"}
        out.append(row)
        if ours:
            a = ours["jobs_per_s"][ours_kind]
            out.append({"part": part, "measure": f"  ours {ours_kind} vs that floor", "ours": num(a),
                        "peer": f"{num(rate)} floor", "ratio": f"{rate / a:.2f}x the floor's time"})  # fmt: skip
    counts = {"part": part, "measure": "  DB statements + transactions per job run"}
    if ours:
        counts["ours"] = _counts(ours)
    peers = [f"{_counts(s)} {label}" for s, label in ((raw, "raw"), (old, "0.1.1"), (floor, "floor")) if s]
    counts["peer"] = "; ".join(peers)
    out.append(counts)
    return out


def _counts(side: dict) -> str:
    c = side.get("counts")
    if not c or c["statements_per_job"] is None:
        return "0" if side["side"] == "raw" else "-"
    return f"{c['statements_per_job']:.1f} + {c['transactions_per_job']:.1f}"


def standalone(name: str, args: argparse.Namespace, configs: list[tuple[str, dict[str, str]]]) -> None:
    """What a per-package script (``packages/task-ferry-<engine>/benchmarks/bench_<engine>.py``)
    runs: the engine's sides with this interpreter (raw and ours; 0.1.1 from its virtualenv
    unless ``args.skip_011``), once per ``(label, environment)`` of ``configs``; prints the
    table (and a profile of ours' job runs with ``args.profile``), writes ``args.json``."""
    from . import envs, table
    from .machine import load, machine

    python = sys.executable
    pythons = {"raw": python, "ours": python}
    if "ferry011" in load_engine(name).sides and not getattr(args, "skip_011", False):
        pythons["ferry011"] = envs.peer("ferry011", envs.versions(python))
    if "floor" in load_engine(name).sides and not getattr(args, "skip_floor", False):
        pythons["floor"] = python
    data: dict = {"machine": machine(), "load_before": load(), "configs": {}}
    out: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as profile_dir:
        for label, env in configs:
            os.environ.update(env)
            if getattr(args, "profile", False):
                env = {**env, "BENCH_PROFILE_DIR": profile_dir}
            sides = run_sides(name, pythons, jobs=args.jobs, runs=args.runs, env=env)
            data["configs"][label] = sides
            out += [{**row, "part": label} for row in rows(name, sides)]
        profile = _profile_report(Path(profile_dir)) if getattr(args, "profile", False) else ""
    data["load_after"] = load()
    m, v = data["machine"], next(iter(next(iter(data["configs"].values())).values()))["versions"]
    print(table.markdown(out))
    print(f"\n{args.jobs:,} jobs per run, median of {args.runs} run(s); machine: {m['cpu']}, {m['cores']} cores; "
          f"load average before {data['load_before']}, after {data['load_after']}")  # fmt: skip
    print("versions: " + ", ".join(f"{k} {x}" for k, x in v.items()))
    if profile:
        print("\n" + profile)
    if getattr(args, "json", None):
        Path(args.json).write_text(json.dumps(data, indent=2))


def _profile_report(directory: Path) -> str:
    import io
    import pstats

    files = [str(p) for p in directory.glob("worker-*.pstats")]
    if not files:
        return "(no profile written)"
    buffer = io.StringIO()
    stats = pstats.Stats(*files, stream=buffer)
    stats.sort_stats("cumulative").print_stats(40)
    stats.sort_stats("tottime").print_stats(25)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="one side of an engine benchmark (run by run_sides)")
    parser.add_argument("engine")
    parser.add_argument("--side", choices=list(KINDS), required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--count", type=int, default=500, help="jobs of the untimed counting pass (0: none)")
    args = parser.parse_args(argv)
    engine = load_engine(args.engine)
    result = drive(engine, args.side, args.jobs, args.runs, args.warmup, args.count)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
