"""Smoke test of the one benchmark command: ``./dev bench --quick --only core`` works end to end.

Not a timing test: the quick workload's figures mean nothing; this checks that the command
builds (or reuses) its virtualenvs, runs both sides, prints the table and writes the JSON,
and that the counts it reports are the ones the code makes (they do not depend on the machine).

    .venv/bin/python -m pytest benchmarks/tests -q

Not part of CI (``./dev test`` does not collect ``benchmarks/``): on a fresh machine the first
run creates ``benchmarks/.venvs/ours`` and ``ferry011`` from the package index, which takes
minutes; with the virtualenvs in place it takes about 15 seconds. Needs PostgreSQL and Redis
(DB 14 only) on 127.0.0.1, and must not run while a full ``./dev bench`` runs (same databases).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_core_run_end_to_end():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--only", "core", "--no-results-file"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "- machine: " in out and "load average" in out
    assert "django-task-ferry 0.1.1" in out and "PostgreSQL" in out and "Redis server" in out
    assert "| core (issue 2) | job of 2,000 increments, flat: increments/s |" in out

    path = ROOT / out.rsplit("JSON: ", 1)[1].split()[0]
    try:
        data = json.loads(path.read_text())["data"]["core"]
    finally:
        path.unlink()
    ours, old = data["ours"], data["ferry011"]
    for side in (ours, old):
        for workload in ("flat", "nested3"):
            assert side["job_run"][workload]["final_100_in_db"] is True
    # 0.1.1 makes two Redis round trips per increment (+4 per job); ours none for a job this short.
    assert old["job_run"]["flat"]["round_trips_per_job"] == 2 * 2_000 + 4
    assert ours["job_run"]["flat"]["round_trips_per_job"] <= 1
    # create_many: one multi-row INSERT per table, in a transaction, whatever the number of jobs.
    assert ours["create_many"]["system"]["queries"] == 4
