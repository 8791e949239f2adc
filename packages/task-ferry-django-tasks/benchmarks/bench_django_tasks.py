"""Benchmark: no-op jobs end to end through the Django task framework's db_worker, raw and tracked by task-ferry.

    .venv/bin/python packages/task-ferry-django-tasks/benchmarks/bench_django_tasks.py \\
        [--jobs 2000] [--rounds 3] [--workers 2] [--synchronous-commit on|off] [--profile] [--json PATH]

The ``django-tasks`` part of ``./dev bench`` on its own, for working on the executor or the
runner: the shared engine driver (``benchmarks/ferrybench/engine.py``; what is measured, and
how, is in ``benchmarks/ferrybench/engines/django_tasks.py`` and ``benchmarks/README.md``) runs
the raw and ours sides with the interpreter that runs this script (so ours is whatever
task-ferry it has installed: the checkout, in the workspace's ``.venv``), with ``--workers``
``db_worker`` processes on PostgreSQL. ``--synchronous-commit off`` sets it on the benchmark
database only: every statement of the runner and of db_worker is its own transaction, so
wall time is mostly commit latency; this takes the WAL flush waits out. ``./dev bench`` runs the raw engine from a virtualenv
of its own instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rounds", "--runs", dest="runs", type=int, default=3, help="timed runs of each side")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--synchronous-commit", choices=["on", "off"], default="on")
    parser.add_argument("--profile", action="store_true", help="also profile ours' job runs")
    parser.add_argument("--json", help="also write every figure here")
    args = parser.parse_args()
    env = {"BENCH_DT_WORKERS": str(args.workers), "BENCH_SYNCHRONOUS_COMMIT": args.synchronous_commit}
    os.environ.update(env)  # before the engine module reads it

    from ferrybench.engine import standalone

    standalone("django-tasks", args, [("django-tasks", env)])


if __name__ == "__main__":
    main()
