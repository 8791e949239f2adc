"""Entry point of child processes started by the conformance kit::

    python -m task_ferry.testing.bootstrap -c CODE [ARGS...]
    python -m task_ferry.testing.bootstrap -m MODULE [ARGS...]
    python -m task_ferry.testing.bootstrap COMMAND [ARGS...]      # manage.py-style

Before ``django.setup()`` it replaces ``settings.DATABASES`` with
``TASK_FERRY_TEST_DATABASES`` and sets every setting in
``TASK_FERRY_TEST_SETTINGS`` (both JSON, built by
:func:`task_ferry.testing.subprocess.child_env`), so the child works on the
test database with the test's settings. See :mod:`task_ferry.testing.subprocess`.
"""

from __future__ import annotations

import json
import os
import runpy
import sys

USAGE = "usage: python -m task_ferry.testing.bootstrap (-c CODE | -m MODULE | COMMAND) [ARGS...]"


def configure() -> None:
    """Apply the test process's databases and settings, then ``django.setup()``."""
    import django
    from django.conf import settings

    from .subprocess import DATABASES_ENV, SETTINGS_ENV

    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        raise SystemExit(
            "task_ferry.testing.bootstrap: DJANGO_SETTINGS_MODULE is not set; build the env with child_env()."
        )
    databases = os.environ.get(DATABASES_ENV)
    if databases:
        # Before setup(): connections read settings.DATABASES on first use.
        settings.DATABASES = json.loads(databases)
    for name, value in json.loads(os.environ.get(SETTINGS_ENV) or "{}").items():
        setattr(settings, name, value)
    django.setup()


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit(USAGE)
    configure()
    if argv[0] == "-c":
        if len(argv) < 2:
            raise SystemExit(USAGE)
        sys.argv = ["-c", *argv[2:]]
        exec(compile(argv[1], "<bootstrap -c>", "exec"), {"__name__": "__main__"})
    elif argv[0] == "-m":
        if len(argv) < 2:
            raise SystemExit(USAGE)
        sys.argv = [argv[1], *argv[2:]]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        from django.core.management import execute_from_command_line

        execute_from_command_line(["manage.py", *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
