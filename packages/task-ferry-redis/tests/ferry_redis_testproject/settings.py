"""Settings for task-ferry-redis's tests. ``FERRY_TEST_DB=postgres`` runs them on the
local PostgreSQL (127.0.0.1:5432, database ``test``); the default is SQLite.

The store under test talks to the machine's Redis at 127.0.0.1:6379, database 13
only (``FERRY_REDIS_TEST_URL`` overrides it); the tests flush that database and
never touch another."""

import os

from task_ferry.testing.settings import *  # noqa: F403
from task_ferry.testing.settings import test_databases

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "task_ferry",
    "task_ferry.testing",
    "ferry_redis_testproject.redisapp",
]

DATABASES = test_databases("ferry_redis")


REDIS_TEST_URL = os.environ.get("FERRY_REDIS_TEST_URL", "redis://127.0.0.1:6379/13")

TASK_FERRY = {
    "EXECUTOR": "immediate",
    "PROGRESS_STORE": {"BACKEND": "redis", "OPTIONS": {"URL": REDIS_TEST_URL, "KEY_PREFIX": "ferry_redis_test:"}},
}
