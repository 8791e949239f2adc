"""Root tests: cross-package integration and failure injection.

``test_upgrade_from_011.py`` runs everything Django in subprocesses and needs no
settings; the failure tests (``test_failures.py``) use the root test project
``ferry_root_testproject`` (``DJANGO_SETTINGS_MODULE`` in the root
``pyproject.toml``) and report, at the end of the run, what they counted.
"""

from __future__ import annotations

from ferry_root_testproject.tally import TALLY


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not TALLY.jobs and not TALLY.skipped:
        return
    write = terminalreporter.write_line
    terminalreporter.section("task-ferry failure tests")
    write(f"jobs: {TALLY.jobs}   lost: {TALLY.lost}   stuck: {TALLY.stuck}   duplicate runs: {TALLY.duplicate_runs}")
    for executor, seconds in TALLY.recoveries:
        write(f"kill -9 to recovery ({executor}): {seconds:.2f}s")
    for executor, seconds in TALLY.kills:
        write(f"timed-out body gone after ({executor}): {seconds:.2f}s")
    for executor, reason in sorted(TALLY.skipped.items()):
        write(f"skipped {executor}: {reason}")
