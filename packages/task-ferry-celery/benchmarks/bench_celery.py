"""Benchmark: no-op jobs end to end through Celery: raw, tracked by task-ferry, and django-task-ferry 0.1.1.

    .venv/bin/python packages/task-ferry-celery/benchmarks/bench_celery.py \\
        [--jobs 2000] [--runs 3] [--reuse 1000] [--skip-011] [--profile] [--json PATH]

The ``celery`` part of ``./dev bench`` on its own, for working on the executor or the runner:
the shared engine driver (``benchmarks/ferrybench/engine.py``; what is measured, and how, is in
``benchmarks/ferrybench/engines/celery.py`` and ``benchmarks/README.md``) runs the raw and ours
sides with the interpreter that runs this script (so ours is whatever task-ferry it has
installed: the checkout, in the workspace's ``.venv``), and 0.1.1 from
``benchmarks/.venvs/ferry011`` (created on first use) unless ``--skip-011``. It runs twice:
with Celery's defaults (connections closed around every task), and with
``CELERY_DB_REUSE_MAX = --reuse`` (0: the defaults only). ``--profile`` profiles ours' job
runs in the pool processes (cProfile, during the untimed counting pass) and prints the top
functions. ``./dev bench`` runs the raw engine from a virtualenv of its own instead, once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))

from ferrybench.engine import standalone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--reuse", type=int, default=1000, help="CELERY_DB_REUSE_MAX of the second run (0: none)")
    parser.add_argument("--skip-011", action="store_true", help="measure raw and ours only")
    parser.add_argument("--profile", action="store_true", help="also profile ours' job runs in the pool processes")
    parser.add_argument("--json", help="also write every figure here")
    args = parser.parse_args()
    configs = [("celery, Celery's defaults", {"BENCH_CELERY_DB_REUSE_MAX": ""})]
    if args.reuse:
        configs.append((f"celery, CELERY_DB_REUSE_MAX={args.reuse}", {"BENCH_CELERY_DB_REUSE_MAX": str(args.reuse)}))
    standalone("celery", args, configs)


if __name__ == "__main__":
    main()
