"""Settings building blocks for test projects of task-ferry and its plugins.

Every distribution's tests run on SQLite by default and on PostgreSQL with
``FERRY_TEST_DB=postgres``. A test project's settings module starts with::

    from task_ferry.testing.settings import *  # noqa: F403
    from task_ferry.testing.settings import test_databases

    DATABASES = test_databases("ferry_redis")
    INSTALLED_APPS = [*FERRY_APPS, "ferry_redis_testproject.redisapp"]

The SQLite test database is a file, not ``:memory:``, so store connections,
threads and worker subprocesses see the same data. Test database names carry
the process id, so several runs can share one PostgreSQL server.

Environment: ``FERRY_TEST_DB`` (``sqlite`` | ``postgres``), ``FERRY_PG_HOST``,
``FERRY_PG_PORT``, ``FERRY_PG_USER``, ``FERRY_PG_NAME``, ``FERRY_PG_TEST_NAME``,
``FERRY_SQLITE_TEST_NAME``.
"""

from __future__ import annotations

import os
import tempfile

__all__ = [
    "CACHES",
    "DEBUG",
    "DEFAULT_AUTO_FIELD",
    "FERRY_APPS",
    "LOGGING",
    "SECRET_KEY",
    "USE_TZ",
    "test_databases",
]

SECRET_KEY = "task-ferry-tests-not-secret"
DEBUG = False
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

#: The apps every test project needs: auth and contenttypes, core, and the kit's job model.
FERRY_APPS = ["django.contrib.auth", "django.contrib.contenttypes", "task_ferry", "task_ferry.testing"]

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"task_ferry": {"handlers": ["console"], "level": "WARNING"}},
}


def test_databases(prefix: str, sqlite_options: dict | None = None) -> dict:
    """``DATABASES`` for a test project; ``prefix`` names its test databases (``test_<prefix>_<pid>``).

    ``sqlite_options`` go to the SQLite connection (e.g. ``{"timeout": 20}`` when
    several worker processes write to the file)."""
    pid = os.getpid()
    if os.environ.get("FERRY_TEST_DB", "sqlite") == "postgres":
        return {
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "HOST": os.environ.get("FERRY_PG_HOST", "127.0.0.1"),
                "PORT": os.environ.get("FERRY_PG_PORT", "5432"),
                "USER": os.environ.get("FERRY_PG_USER", "postgres"),
                "NAME": os.environ.get("FERRY_PG_NAME", "test"),
                "TEST": {"NAME": os.environ.get("FERRY_PG_TEST_NAME", f"test_{prefix}_{pid}")},
            }
        }
    tmp = tempfile.gettempdir()
    return {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.path.join(tmp, f"{prefix}.sqlite3"),
            "OPTIONS": dict(sqlite_options or {}),
            "TEST": {
                "NAME": os.environ.get("FERRY_SQLITE_TEST_NAME", os.path.join(tmp, f"{prefix}_test_{pid}.sqlite3"))
            },
        }
    }
