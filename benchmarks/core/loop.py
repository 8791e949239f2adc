"""Ours alone, in one process: what ``JobHandler.create_and_start`` and ``run_job`` cost per
job for a no-op job of the ``Job`` model itself, with no engine and no worker around them.

    benchmarks/.venvs/ours/bin/python benchmarks/core/loop.py [--jobs 1000] [--runs 5]

It creates the PostgreSQL database ``ferry_bench_loop`` (dropped at the end), registers the
engine benchmarks' ``bench_noop`` type (``ferrybench.apps``), and dispatches to
``benchapp.noop.NoopExecutor`` (defers to ``on_commit`` like a real queue, runs nothing). Each
run creates ``--jobs`` jobs one call at a time, then runs each one with ``run_job`` in this
process; it prints the statements of one create and one run, and ms per job of each run
with their medians. To compare two versions, run it at each commit in turn (the ``ours``
virtualenv is an editable install of the checkout).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # ferrybench, benchapp
DB = "ferry_bench_loop"


def admin_sql(sql: str) -> None:
    import psycopg

    with psycopg.connect(dbname="postgres", host="127.0.0.1", user="postgres", autocommit=True) as conn:
        conn.execute(sql)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000, help="jobs per run")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    admin_sql(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
    admin_sql(f'CREATE DATABASE "{DB}"')
    try:
        import django
        from django.conf import settings

        settings.configure(
            DEBUG=False,
            USE_TZ=True,
            SECRET_KEY="bench",
            DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
            INSTALLED_APPS=[
                "django.contrib.contenttypes",
                "django.contrib.auth",
                "task_ferry",
                "ferrybench.apps.BenchConfig",
                "benchapp",
            ],
            DATABASES={
                "default": {
                    "ENGINE": "django.db.backends.postgresql",
                    "NAME": DB,
                    "HOST": "127.0.0.1",
                    "USER": "postgres",
                    "CONN_MAX_AGE": None,
                }
            },
            TASK_FERRY={"EXECUTOR": "benchapp.noop.NoopExecutor"},
        )
        django.setup()
        from django.core.management import call_command
        from django.db import connection
        from django.test.utils import CaptureQueriesContext
        from ferrybench.apps import JOB_TYPE

        from task_ferry.handler import JobHandler
        from task_ferry.runner import run_job

        call_command("migrate", verbosity=0)
        job = JobHandler.create_and_start(None, JOB_TYPE)  # first-use caches
        run_job(job.pk, JOB_TYPE)
        with CaptureQueriesContext(connection) as create:
            job = JobHandler.create_and_start(None, JOB_TYPE)
        with CaptureQueriesContext(connection) as run:
            run_job(job.pk, JOB_TYPE)
        for what, ctx in (("create_and_start", create), ("run_job", run)):
            print(f"{what}: {[q['sql'].split(None, 1)[0] for q in ctx.captured_queries]}")
        creates, runs = [], []
        for _ in range(args.runs):
            with connection.cursor() as cursor:
                cursor.execute("TRUNCATE task_ferry_job CASCADE")
            t0 = time.perf_counter()
            jobs = [JobHandler.create_and_start(None, JOB_TYPE) for _ in range(args.jobs)]
            creates.append((time.perf_counter() - t0) / args.jobs * 1000)
            t0 = time.perf_counter()
            for job in jobs:
                run_job(job.pk, JOB_TYPE)
            runs.append((time.perf_counter() - t0) / args.jobs * 1000)
        for what, values in (("create_and_start", creates), ("run_job", runs)):
            print(f"{what} ms per job: {', '.join(f'{v:.3f}' for v in values)}; median {statistics.median(values):.3f}")
        connection.close()
    finally:
        admin_sql(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')


if __name__ == "__main__":
    main()
