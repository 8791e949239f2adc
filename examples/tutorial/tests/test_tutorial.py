"""The README's five-minute tutorial, run the way a reader runs it.

A fresh SQLite database is migrated, ``manage.py db_worker`` is started, and
``walkthrough.py`` (the tutorial's shell session, shown in the README) is run
with ``manage.py shell``. The README's tutorial code blocks are checked against
these files by ``packages/task-ferry-core/tests/test_docs.py``, so what the
README shows is what runs here.

Needs task-ferry-core, task-ferry-django-tasks and django-tasks-db (on Django
5.2 the ``django-tasks`` backport too); no services::

    pytest examples/tutorial
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture
def manage(tmp_path):
    env = {**os.environ, "TUTORIAL_DB": str(tmp_path / "db.sqlite3"), "PYTHONUNBUFFERED": "1"}
    env.pop("DJANGO_SETTINGS_MODULE", None)  # manage.py sets the tutorial's own

    def run(*args: str, timeout: float = 300) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=timeout
        )
        assert done.returncode == 0, f"manage.py {args[0]} exited with {done.returncode}:\n{done.stderr}"
        return done.stdout

    run.env = env
    run("migrate", "-v0")
    return run


@pytest.fixture
def worker(manage, tmp_path):
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "db_worker"],
            cwd=PROJECT,
            env=manage.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield log
    finally:
        proc.terminate()  # one SIGTERM: db_worker finishes the running task, then exits
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_tutorial_runs_as_the_readme_says(manage, worker):
    try:
        out = manage("shell", "-c", (PROJECT / "walkthrough.py").read_text())
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"walkthrough.py did not end; its output:\n{exc.stdout}\nthe worker's:\n{worker.read_text()}"
        ) from None
    # Django >= 5.2's shell first says what it imported automatically.
    lines = [line for line in out.splitlines() if line and not line.endswith("(use -v 2 for details).")]

    # Poll: the states seen while the first job ran, then its final row.
    polls = [re.fullmatch(r"(pending|started) (\d+) ?(.*)", line) for line in lines[:-2]]
    assert all(polls), f"unexpected poll output: {lines}"
    percentages = [int(m[2]) for m in polls]
    assert percentages == sorted(percentages), f"progress went backwards: {percentages}"
    assert any(m[1] == "started" and 0 < int(m[2]) < 100 for m in polls), f"no mid-run progress was seen: {lines}"
    assert lines[-2] == "finished 100 {'rows': 300}"

    # Cancel: recorded at once, and the worker stops the run early and calls on_cancelled.
    assert lines[-1] == "cancelled"
    deadline = time.monotonic() + 60
    while "report 2 cancelled" not in worker.read_text():
        assert time.monotonic() < deadline, f"on_cancelled did not run in the worker:\n{worker.read_text()}"
        time.sleep(0.2)
    row = manage(
        "shell",
        "-c",
        "from reports.models import ReportJob; j = ReportJob.objects.get(pk=2); "
        "print(j.state, j.progress_percentage, j.result, j.output == '')",
    ).splitlines()[-1]
    state, percentage, result, no_output = row.split()
    assert (state, result, no_output) == ("cancelled", "None", "True")
    assert 20 <= int(percentage) < 100, f"the cancelled run stopped at {percentage} %"
