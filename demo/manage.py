#!/usr/bin/env python
import os
import sys


def engine_from_argv(argv: list[str]) -> str | None:
    """``--engine X`` / ``--engine=X``: read before Django is set up, because the settings
    (installed apps, executor, store) depend on it."""
    for i, arg in enumerate(argv):
        if arg == "--engine" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--engine="):
            return arg.partition("=")[2]
    return None


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_project.settings")
    engine = engine_from_argv(sys.argv[2:])
    if engine:
        os.environ["FERRY_DEMO_ENGINE"] = engine
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
