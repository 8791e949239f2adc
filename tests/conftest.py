"""Root tests: cross-package integration and failure injection.

``test_upgrade_from_011.py`` runs everything Django in subprocesses and needs no
settings; the failure tests (``test_failures.py``) use the root test project
``ferry_root_testproject`` (``DJANGO_SETTINGS_MODULE`` in the root
``pyproject.toml``) and report, at the end of the run, what they counted per
executor: in the terminal (section "task-ferry failure tests") and in
``tests/.results/failures.json`` (gitignored), which the lead can quote.
"""

from __future__ import annotations

import json
from pathlib import Path

from ferry_root_testproject.tally import TALLY

RESULTS = Path(__file__).parent / ".results" / "failures.json"


def _line(name: str, counts) -> str:
    return (
        f"{name:<18} jobs: {counts.jobs:>3}   lost: {counts.lost}   stuck: {counts.stuck}   "
        f"duplicate runs: {counts.duplicate_runs}"
    )


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not TALLY.executors and not TALLY.skipped:
        return
    write = terminalreporter.write_line
    terminalreporter.section("task-ferry failure tests")
    for name, counts in sorted(TALLY.executors.items()):
        write(_line(name, counts))
    write(_line("all executors", TALLY.total))
    for name in sorted({name for name, _ in TALLY.recoveries}):
        seconds = [s for n, s in TALLY.recoveries if n == name]
        write(
            f"kill -9 to recovery ({name}): " + ", ".join(f"{s:.2f}s" for s in seconds) + f" (max {max(seconds):.2f}s)"
        )
    for how, seconds in TALLY.kills:
        write(f"timed-out body gone after ({how}): {seconds:.2f}s")
    for name, reason in sorted(TALLY.skipped.items()):
        write(f"skipped {name}: {reason}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(TALLY.as_dict(), indent=2) + "\n")
    write(f"(also in {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS})")
