"""Settings for task-ferry-redis's tests. ``FERRY_TEST_DB=postgres`` runs them on the
local PostgreSQL (127.0.0.1:5432, database ``test``); the default is SQLite.

The store under test talks to the machine's Redis at 127.0.0.1:6379, database 13
only (``FERRY_REDIS_TEST_URL`` overrides it); the tests flush that database and
never touch another."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "task-ferry-redis-tests"
DEBUG = False
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "task_ferry",
    "task_ferry.testing",
    "ferry_redis_testproject.redisapp",
]

if os.environ.get("FERRY_TEST_DB", "sqlite") == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ.get("FERRY_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("FERRY_PG_PORT", "5432"),
            "USER": os.environ.get("FERRY_PG_USER", "postgres"),
            "NAME": os.environ.get("FERRY_PG_NAME", "test"),
            "TEST": {"NAME": os.environ.get("FERRY_PG_TEST_NAME", f"test_ferry_redis_{os.getpid()}")},
        }
    }
else:
    # A file, not :memory:, so job threads and subprocesses see the same data.
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(BASE_DIR / "db.sqlite3"),
            "TEST": {"NAME": os.environ.get("FERRY_SQLITE_TEST_NAME", f"/tmp/ferry_redis_test_{os.getpid()}.sqlite3")},
        }
    }

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

REDIS_TEST_URL = os.environ.get("FERRY_REDIS_TEST_URL", "redis://127.0.0.1:6379/13")

TASK_FERRY = {
    "EXECUTOR": "immediate",
    "PROGRESS_STORE": {"BACKEND": "redis", "OPTIONS": {"URL": REDIS_TEST_URL, "KEY_PREFIX": "ferry_redis_test:"}},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"task_ferry": {"handlers": ["console"], "level": "WARNING"}},
}
