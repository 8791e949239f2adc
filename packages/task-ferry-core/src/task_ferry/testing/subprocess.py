"""Run child processes (workers, readers, writers) against the *test* database.

A test's database is not the one in the settings module: pytest-django
creates ``test_<name>`` (or a per-run SQLite file) and points the test
process at it. A child started with plain ``python manage.py ...`` would use
the real database. :func:`child_env` captures what the child needs, and the
bootstrap entry point ``python -m task_ferry.testing.bootstrap`` applies it
before ``django.setup()``:

* ``DJANGO_SETTINGS_MODULE`` and a ``PYTHONPATH`` that finds the test project;
* ``TASK_FERRY_TEST_DATABASES``: the test process's ``DATABASES`` as JSON,
  with the test database names, replacing ``settings.DATABASES`` in the child;
* ``TASK_FERRY_TEST_SETTINGS``: JSON of further settings to copy as they are
  *now* in the test process (default ``TASK_FERRY`` and ``CACHES``), so values
  set with ``override_settings`` or pytest-django's ``settings`` fixture reach
  the child too.

The bootstrap takes, after its own name, one of::

    -c CODE [ARGS...]        run a Python snippet (``sys.argv = ["-c", *ARGS]``)
    -m MODULE [ARGS...]      run a module as __main__ (``celery``, ``rq``, ``dramatiq``)
    COMMAND [ARGS...]        a manage.py command (``db_worker``, ``check``, ...)

A plugin's ``ferry_worker`` fixture, for example::

    from task_ferry.testing.subprocess import bootstrap_args, running

    class TestCeleryExecutor(ExecutorConformance):
        @pytest.fixture
        def executor_setting(self):
            return "celery"

        @pytest.fixture
        def ferry_worker(self):
            # Started after the kit applied TASK_FERRY, so the worker gets the same settings.
            args = bootstrap_args("-m", "celery", "-A", "proj", "worker", "-Q", "default,ferry_conformance_b",
                                  "--concurrency", "1", "--pool", "prefork")
            with running(args, ready=lambda: app.control.ping(timeout=0.5)) as worker:
                yield worker

and a one-shot snippet (returns its stdout, raises with its stderr on failure)::

    from task_ferry.testing.subprocess import run_python

    out = run_python("from task_ferry.models import Job; print(Job.objects.count())")

Data a child must see has to be committed: use ``transactional_db``, not ``db``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import PurePath
from typing import Any

DATABASES_ENV = "TASK_FERRY_TEST_DATABASES"
SETTINGS_ENV = "TASK_FERRY_TEST_SETTINGS"

#: Settings copied to the child by default, as they are in the test process when the env is built.
FORWARDED_SETTINGS = ("TASK_FERRY", "CACHES")


def _json(value: Any, what: str) -> str:
    def default(obj: Any) -> Any:
        if isinstance(obj, PurePath):
            return os.fspath(obj)
        raise TypeError(
            f"{what} holds a {type(obj).__name__} ({obj!r}), which cannot be passed to a child process; "
            f"use JSON values (strings, numbers, lists, dicts) in test settings."
        )

    return json.dumps(value, default=default)


def _python_path() -> str:
    """The test process's import path minus what every interpreter of this venv already has,
    so the child imports the test project (pytest's ``pythonpath`` ini option) the same way."""
    system = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    keep: list[str] = []
    for entry in sys.path:
        if not entry or not os.path.isdir(entry):
            continue
        real = os.path.realpath(entry)
        if any(real == s or real.startswith(s + os.sep) for s in system) or entry in keep:
            continue
        keep.append(entry)
    inherited = os.environ.get("PYTHONPATH")
    return os.pathsep.join([*keep, inherited] if inherited else keep)


def child_env(settings: dict[str, Any] | None = None, forward: Iterable[str] = FORWARDED_SETTINGS) -> dict[str, str]:
    """Environment for a child process that must use this test process's database and settings.

    ``forward`` names settings copied with their current values; ``settings``
    adds or replaces values explicitly (use it from fixtures broader than a test,
    which cannot see a test's ``settings`` changes). Call it inside the test (or
    its fixtures), after the test database exists."""
    from django.conf import settings as django_settings
    from django.db import connections

    module = os.environ.get("DJANGO_SETTINGS_MODULE") or getattr(django_settings, "SETTINGS_MODULE", None)
    if not module:
        raise RuntimeError("child_env() needs DJANGO_SETTINGS_MODULE (set it, or run under pytest-django with --ds).")
    # connections[alias].settings_dict carries the test database names pytest-django switched to.
    databases = {alias: connections[alias].settings_dict for alias in django_settings.DATABASES}
    values = {name: getattr(django_settings, name) for name in forward if hasattr(django_settings, name)}
    values.update(settings or {})
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": module,
            "PYTHONPATH": _python_path(),
            DATABASES_ENV: _json(databases, "DATABASES"),
            SETTINGS_ENV: _json(values, "a forwarded setting"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def bootstrap_args(*args: str) -> list[str]:
    """``[python, -m, task_ferry.testing.bootstrap, *args]`` for :func:`running` or ``subprocess``."""
    return [sys.executable, "-m", "task_ferry.testing.bootstrap", *args]


def run_python(code: str, *args: str, timeout: float = 60.0, env: dict[str, str] | None = None) -> str:
    """Run ``code`` in a bootstrapped child against the test database; return its stdout.

    Raises ``AssertionError`` with the child's stderr if it exits non-zero or
    outlives ``timeout`` seconds."""
    try:
        done = subprocess.run(
            bootstrap_args("-c", code, *args),
            env=env or child_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"child process did not finish within {timeout}s; stderr:\n{exc.stderr}") from None
    if done.returncode != 0:
        raise AssertionError(f"child process exited with {done.returncode}; stderr:\n{done.stderr}")
    return done.stdout


@contextmanager
def running(
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    ready: Callable[[], Any] | None = None,
    ready_timeout: float = 60.0,
    stop_timeout: float = 15.0,
) -> Iterator[subprocess.Popen]:
    """Start ``args`` (usually from :func:`bootstrap_args`) for the duration of the block.

    The process gets its own session, so workers that fork children are stopped
    as a group: SIGTERM at the end of the block, SIGKILL after ``stop_timeout``.
    ``ready``, if given, is polled until it returns a truthy value; if the
    process exits first, or ``ready_timeout`` passes, the block is not entered
    and the error quotes the process's output."""
    name = " ".join(args[3:] if list(args[:3]) == bootstrap_args() else args)
    # A file, not a pipe: a chatty worker must never block on a full pipe nobody reads.
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen(
            args, env=env or child_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

        def output() -> str:
            log.seek(0)
            return log.read()[-5000:]

        try:
            if ready is not None:
                deadline = time.monotonic() + ready_timeout
                while True:
                    if proc.poll() is not None:
                        raise AssertionError(f"{name!r} exited with {proc.returncode} before it was ready:\n{output()}")
                    try:
                        if ready():
                            break
                    except Exception:
                        pass  # not up yet; the probe's own errors are expected while the process starts
                    if time.monotonic() > deadline:
                        raise AssertionError(f"{name!r} was not ready after {ready_timeout}s:\n{output()}")
                    time.sleep(0.1)
            yield proc
        finally:
            _stop(proc, stop_timeout)
            # pytest shows captured stderr only for failing tests: the worker's log is there when it matters.
            sys.stderr.write(f"--- output of {name} ---\n{output()}\n")


def _stop(proc: subprocess.Popen, timeout: float) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
