"""task-ferry's django_tasks executor against the raw task framework, on the same engine.

    python packages/task-ferry-django-tasks/benchmarks/bench_django_tasks.py [--jobs 2000] [--rounds 3] [--workers 2]

Run it with a Python that has task-ferry-core, task-ferry-django-tasks, django-tasks-db
(+ the django-tasks backport on Django 5.2) and psycopg installed, e.g. the workspace's
``.venv/bin/python``. Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth); the
database ``ferry_bench_dt`` (``FERRY_BENCH_DB``) is dropped and created afresh.

What it does, ``--rounds`` times, the sides in turn, with ``--workers`` real
``manage.py db_worker`` processes (``--interval 0.1 --no-startup-delay --verbosity 0``)
running throughout:

* ``raw``: ``noop.enqueue()`` ``--jobs`` times (a task whose body does nothing), then wait
  until every task result is ``SUCCESSFUL``;
* ``ferry``: ``JobHandler.create_many(None, "bench_noop", [{}] * jobs)`` (a job type whose
  ``run`` does nothing; one transaction, tasks enqueued at commit), then wait until every
  job is ``finished``;
* ``ferry-single``: ``JobHandler.create_and_start`` ``--jobs`` times, one transaction each.

The time is from the first dispatch call until the last job/task is seen finished (polled
every 20 ms). The table shows medians over the rounds: jobs/s, and each round's ferry time /
raw time (target <= 1.5). Wall time on a shared machine is mostly commit latency (every
statement of the runner and of db_worker is its own transaction), so CPU time per job is
shown as well, and ``--synchronous-commit off`` (on the benchmark database only) takes the
WAL flush waits out.

Queries are SQL statements sent through Django's database wrappers (``execute_wrapper``
on every connection a process opens, including the progress store's own one); BEGIN /
COMMIT are not statements there and are not counted. In the workers they are bucketed:
``poll`` (db_worker's ``SELECT ... FOR UPDATE SKIP LOCKED``; polls that found nothing are
counted apart), ``claim`` (db_worker's claim UPDATE), ``framework`` (the rest of
``Worker.run_task``: marking the result successful), ``body`` (inside the task body, i.e.
``task_ferry.runner.run_job`` for ferry jobs). "per job run" = (successful polls + claim +
framework + body) / tasks run; dispatch queries are counted in the dispatching process.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
SETTINGS = "benchdt.settings"

# ── Query counting (both processes) ────────────────────────────────────────────

COUNTS: Counter = Counter()
_BUCKETS: list[str] = ["other"]


def _count(execute, sql, params, many, context):
    COUNTS[_BUCKETS[-1]] += 1
    return execute(sql, params, many, context)


@contextmanager
def bucket(name: str):
    _BUCKETS.append(name)
    try:
        yield
    finally:
        _BUCKETS.pop()


def count_queries() -> None:
    """Count every statement of every connection this process opens from now on."""
    from django.db import connections
    from django.db.backends.signals import connection_created

    def wrap(sender, connection, **kwargs):
        if _count not in connection.execute_wrappers:
            connection.execute_wrappers.append(_count)

    connection_created.connect(wrap, weak=False)
    for conn in connections.all():
        wrap(None, conn)


# ── Worker side ────────────────────────────────────────────────────────────────


def worker(worker_id: str, stats: Path, interval: str) -> None:
    """``db_worker`` with its queries bucketed; SIGUSR1 writes the counters to ``stats``."""
    import django

    django.setup()
    from django.core.management import call_command
    from django_tasks_db.management.commands import db_worker
    from django_tasks_db.models import DBTaskResult, DBTaskResultQuerySet

    from task_ferry import runner

    count_queries()
    dumps = Counter()

    def dump(signum, frame):
        dumps["seq"] += 1
        tmp = stats.with_suffix(".tmp")
        times = os.times()
        cpu_ms = round((times.user + times.system) * 1000)
        tmp.write_text(json.dumps({"seq": dumps["seq"], "cpu_ms": cpu_ms, **COUNTS}))
        tmp.replace(stats)

    signal.signal(signal.SIGUSR1, dump)

    get_locked, claim, run_task, run_job = (
        DBTaskResultQuerySet.get_locked,
        DBTaskResult.claim,
        db_worker.Worker.run_task,
        runner.run_job,
    )

    def counted_get_locked(self):
        before = COUNTS["poll"]
        with bucket("poll"):
            found = get_locked(self)
        if found is None:  # an idle poll: not part of any job run
            spent = COUNTS["poll"] - before
            COUNTS["poll"] -= spent
            COUNTS["empty_polls"] += 1
            COUNTS["empty_poll_queries"] += spent
        return found

    def counted_claim(self, worker_id):
        with bucket("claim"):
            return claim(self, worker_id)

    def counted_run_task(self, db_task_result):
        COUNTS["tasks"] += 1
        with bucket("framework"):
            return run_task(self, db_task_result)

    def counted_run_job(*args, **kwargs):
        with bucket("body"):
            return run_job(*args, **kwargs)

    DBTaskResultQuerySet.get_locked = counted_get_locked
    DBTaskResult.claim = counted_claim
    db_worker.Worker.run_task = counted_run_task
    runner.run_job = counted_run_job
    # --verbosity 0: no per-task log lines, which would cost both sides the same and blur the difference.
    call_command(
        "db_worker", "--queue-name", "default", "--interval", interval, "--no-startup-delay", "--no-reload",
        "--worker-id", worker_id, "--verbosity", "0",
    )  # fmt: skip


# ── Orchestrator ───────────────────────────────────────────────────────────────


def recreate_database(synchronous_commit: str) -> None:
    import psycopg
    from django.conf import settings

    db = settings.DATABASES["default"]
    with psycopg.connect(host=db["HOST"], port=db["PORT"], user=db["USER"], dbname="postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db["NAME"]}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db["NAME"]}"')
        conn.execute(f'ALTER DATABASE "{db["NAME"]}" SET synchronous_commit = {synchronous_commit}')


class Workers:
    def __init__(self, n: int, interval: str, tmp: Path) -> None:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": SETTINGS, "PYTHONPATH": str(HERE)}
        self.stats = [tmp / f"worker-{i}.json" for i in range(n)]
        self.logs = [open(tmp / f"worker-{i}.log", "w") for i in range(n)]  # noqa: SIM115
        self.procs = [
            subprocess.Popen(
                [sys.executable, __file__, "worker", f"bench-{i}", str(self.stats[i]), interval],
                env=env,
                stdout=self.logs[i],
                stderr=subprocess.STDOUT,
            )
            for i in range(n)
        ]
        self.seq = 0

    def snapshot(self) -> Counter:
        """Summed counters of all workers, as of now."""
        self.seq += 1
        for proc in self.procs:
            if proc.poll() is not None:
                raise SystemExit(f"a worker exited with {proc.returncode}; see its log in {self.stats[0].parent}")
            proc.send_signal(signal.SIGUSR1)
        total: Counter = Counter()
        for path in self.stats:
            deadline = time.monotonic() + 10
            while True:
                try:
                    data = json.loads(path.read_text())
                    if data["seq"] >= self.seq:
                        break
                except (OSError, ValueError):
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"worker stats {path} not written")
                time.sleep(0.01)
            data.pop("seq")
            total.update(data)
        return total

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(30)
        for log in self.logs:
            log.close()


def wait_all(count_done, n: int, timeout: float = 600.0) -> float:
    deadline = time.monotonic() + timeout
    while True:
        if count_done() >= n:
            return time.perf_counter()
        if time.monotonic() > deadline:
            raise SystemExit(f"only {count_done()} of {n} done after {timeout}s")
        time.sleep(0.02)


def reset_tables() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE task_ferry_job, task_ferry_progress, django_tasks_database_dbtaskresult RESTART IDENTITY CASCADE"
        )


def run_side(side: str, n: int, workers: Workers) -> dict:
    from benchdt.tasks import noop
    from django_tasks_db.models import DBTaskResult

    from task_ferry.handler import JobHandler
    from task_ferry.models import Job

    reset_tables()
    time.sleep(0.3)  # workers back to idle polling
    before = workers.snapshot()
    dispatch_before = COUNTS["dispatch"]
    start, cpu_start = time.perf_counter(), time.process_time()
    with bucket("dispatch"):
        if side == "raw":
            for _ in range(n):
                noop.enqueue()
        elif side == "ferry":
            JobHandler.create_many(None, "bench_noop", [{}] * n)
        else:
            for _ in range(n):
                JobHandler.create_and_start(None, "bench_noop")
    dispatched, dispatch_cpu = time.perf_counter(), time.process_time() - cpu_start
    if side == "raw":
        done = DBTaskResult.objects.filter(status="SUCCESSFUL").count
    else:
        done = Job.objects.filter(state="finished").count
    end = wait_all(done, n)
    dispatch_queries = COUNTS["dispatch"] - dispatch_before
    time.sleep(0.3)
    after = workers.snapshot()
    delta = Counter({k: after[k] - before.get(k, 0) for k in after})
    tasks = delta["tasks"]
    assert tasks == n, f"{side}: workers ran {tasks} tasks for {n} jobs"
    per_run = {k: delta[k] / tasks for k in ("poll", "claim", "framework", "body")}
    return {
        "side": side,
        "seconds": end - start,
        "dispatch_seconds": dispatched - start,
        "jobs_per_s": n / (end - start),
        "dispatch_queries_per_job": dispatch_queries / n,
        "dispatch_cpu_ms_per_job": dispatch_cpu * 1000 / n,
        "worker_cpu_ms_per_run": delta["cpu_ms"] / n,
        "queries_per_run": sum(per_run.values()),
        **{f"{k}_per_run": v for k, v in per_run.items()},
        "empty_polls": delta["empty_polls"],
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--interval", default="0.1", help="db_worker --interval (seconds between empty polls)")
    parser.add_argument("--sides", default="raw,ferry,ferry-single")
    parser.add_argument(
        "--synchronous-commit",
        choices=["on", "off"],
        default="on",
        help="the benchmark database's synchronous_commit; off takes WAL flush waits out of the picture",
    )
    parser.add_argument("--json", type=Path, help="also write every round's figures here")
    args = parser.parse_args(argv)
    sides = args.sides.split(",")

    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    sys.path.insert(0, str(HERE))
    import django
    from django.conf import settings

    recreate_database(args.synchronous_commit)
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    count_queries()

    rounds: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="ferry-bench-dt-") as tmp:
        workers = Workers(args.workers, args.interval, Path(tmp))
        try:
            time.sleep(3)  # workers up
            for r in range(args.rounds):
                for side in sides:
                    result = run_side(side, args.jobs, workers)
                    result["round"] = r + 1
                    rounds.append(result)
                    print(
                        f"round {r + 1} {side:>12}: {result['jobs_per_s']:7.0f} jobs/s "
                        f"({result['seconds']:.2f}s, dispatch {result['dispatch_seconds']:.2f}s)",
                        file=sys.stderr,
                    )
        finally:
            workers.stop()

    import django_tasks_db

    print(
        f"\n{args.jobs} no-op jobs, {args.workers} db_worker processes, PostgreSQL, Django {django.get_version()}, "
        f"django-tasks-db {django_tasks_db.__version__}, {args.rounds} rounds, db_worker --interval {args.interval}, "
        f"CONN_MAX_AGE {settings.DATABASES['default']['CONN_MAX_AGE']}, synchronous_commit {args.synchronous_commit}"
    )
    print(f"settings: TASKS default = DatabaseBackend, TASK_FERRY = {settings.TASK_FERRY}\n")
    print(
        "| side | jobs/s | time (s) | time / raw | worker CPU ms / job run | dispatch CPU ms / job "
        "| queries / job run (poll+claim+framework+body) | dispatch queries / job |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---:|")
    by_round = {(r["round"], r["side"]): r for r in rounds}
    for side in sides:
        runs = [r for r in rounds if r["side"] == side]

        def median(key, runs=runs):
            return statistics.median(r[key] for r in runs)

        ratios = [
            r["seconds"] / by_round[(r["round"], "raw")]["seconds"] for r in runs if (r["round"], "raw") in by_round
        ]
        split = "+".join(
            f"{median(f'{k}_per_run'):.2f}".rstrip("0").rstrip(".") for k in ("poll", "claim", "framework", "body")
        )
        print(
            f"| {side} | {median('jobs_per_s'):.0f} | {median('seconds'):.2f} | "
            f"{statistics.median(ratios) if ratios else float('nan'):.2f}x | {median('worker_cpu_ms_per_run'):.2f} | "
            f"{median('dispatch_cpu_ms_per_job'):.2f} | {median('queries_per_run'):.2f} ({split}) | "
            f"{median('dispatch_queries_per_job'):.2f} |"
        )
    print("\nmedians over the rounds; time / raw is the median of each round's ratio to that round's raw side.")
    print("all rounds, jobs/s: " + "; ".join(
        f"{side}: " + ", ".join(f"{r['jobs_per_s']:.0f}" for r in rounds if r["side"] == side) for side in sides
    ))  # fmt: skip
    print("target: ferry time / raw time <= 1.5")
    if args.json:
        args.json.write_text(json.dumps({"jobs": args.jobs, "workers": args.workers, "rounds": rounds}, indent=2))


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker(sys.argv[2], Path(sys.argv[3]), sys.argv[4])
    else:
        main(sys.argv[1:])
