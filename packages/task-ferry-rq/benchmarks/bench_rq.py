"""Benchmark: no-op jobs end to end through RQ, raw and tracked by task-ferry.

    .venv/bin/python packages/task-ferry-rq/benchmarks/bench_rq.py \\
        [--jobs 2000] [--runs 3] [--workers 2] [--setups fork,simple] [--profile] [--json PATH]

The ``rq`` part of ``./dev bench`` on its own, for working on the executor or the runner: the
shared engine driver (``benchmarks/ferrybench/engine.py``; what is measured, and how, is in
``benchmarks/ferrybench/engines/rq.py`` and ``benchmarks/README.md``) runs the raw and ours
sides with the interpreter that runs this script (so ours is whatever task-ferry it has
installed: the checkout, in the workspace's ``.venv``), once per worker setup:

``fork``    ``rq.Worker``, RQ's default: a work horse is forked for every job;
``simple``  ``rq.SimpleWorker``: jobs run in the worker process itself.

``./dev bench`` runs the raw engine from a virtualenv of its own instead, with ``fork`` only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))

from ferrybench.engine import standalone

SETUPS = {"fork": "rq.Worker", "simple": "rq.SimpleWorker"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--setups", default="fork,simple", help="comma-separated: fork, simple")
    parser.add_argument("--profile", action="store_true", help="also profile ours' job runs")
    parser.add_argument("--json", help="also write every figure here")
    args = parser.parse_args()
    setups = [s.strip() for s in args.setups.split(",") if s.strip()]
    if unknown := set(setups) - set(SETUPS):
        sys.exit(f"unknown setups {sorted(unknown)}; choose from {', '.join(SETUPS)}")
    workers = {"BENCH_RQ_WORKERS": str(args.workers)}
    standalone("rq", args, [(f"rq, {s}", {**workers, "BENCH_RQ_WORKER_CLASS": SETUPS[s]}) for s in setups])


if __name__ == "__main__":
    main()
