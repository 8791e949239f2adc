"""Benchmark: no-op jobs end to end through Dramatiq, raw and tracked by task-ferry.

    .venv/bin/python packages/task-ferry-dramatiq/benchmarks/bench_dramatiq.py \\
        [--jobs 2000] [--runs 3] [--processes 2] [--threads 1] [--profile] [--json PATH]

The ``dramatiq`` part of ``./dev bench`` on its own, for working on the executor or the runner:
the shared engine driver (``benchmarks/ferrybench/engine.py``; what is measured, and how, is in
``benchmarks/ferrybench/engines/dramatiq.py`` and ``benchmarks/README.md``) runs the raw and
ours sides with the interpreter that runs this script (so ours is whatever task-ferry it has
installed: the checkout, in the workspace's ``.venv``). ``./dev bench`` runs the raw engine
from a virtualenv of its own instead.
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
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="also profile ours' job runs")
    parser.add_argument("--json", help="also write every figure here")
    args = parser.parse_args()
    env = {"BENCH_DRAMATIQ_PROCESSES": str(args.processes), "BENCH_DRAMATIQ_THREADS": str(args.threads)}
    os.environ.update(env)  # before the engine module reads them

    from ferrybench.engine import standalone

    standalone("dramatiq", args, [("dramatiq", env)])


if __name__ == "__main__":
    main()
