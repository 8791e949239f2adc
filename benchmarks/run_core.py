"""The core benchmark alone: task-ferry-core against django-task-ferry 0.1.1, with its detailed table.

    python3 benchmarks/run_core.py [--runs 5] [--job-runs 3] [--increments 100000] [--jobs 1000] [--many 10000]

The same measurement as the ``core`` part of ``./dev bench`` (``benchmarks/run.py``), which
runs it with fewer repetitions beside every other benchmark. It uses the virtualenvs
``benchmarks/.venvs/ours`` and ``ferry011`` (created on first use, see ferrybench/envs.py),
prints the core benchmark's own table with its targets, and writes every figure as JSON
to ``benchmarks/results/core-<timestamp>.json``. Needs python3 >= 3.11, PostgreSQL (user
postgres, trust auth) and Redis on loopback. See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ferrybench import core, envs
from ferrybench.machine import load, machine, source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    core.add_options(parser)
    args = parser.parse_args()
    ours = envs.ours()
    pythons = {"ours": ours, "ferry011": envs.peer("ferry011", envs.versions(ours))}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    # Other processes share the machine; the load average says how much.
    data = {"machine": machine(), "source": source(envs.ROOT), "started": stamp, "load_before": load()}
    data |= core.measure(pythons, args)
    data["load_after"] = load()
    data["table"] = core.table(data)
    path = core.RESULTS / f"core-{stamp}.json"
    path.write_text(json.dumps(data, indent=2))
    print(data["table"])
    print(f"\nJSON: {path.relative_to(envs.ROOT)}")


if __name__ == "__main__":
    main()
