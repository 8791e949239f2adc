"""Test settings: core's building blocks (SQLite by default, PostgreSQL with
FERRY_TEST_DB=postgres) plus the kit's app, which holds its job model."""

from task_ferry.testing.settings import *  # noqa: F403
from task_ferry.testing.settings import FERRY_APPS, test_databases

DATABASES = test_databases("ferry_thread_example")
INSTALLED_APPS = FERRY_APPS
TASK_FERRY = {"EXECUTOR": "ferry_thread_executor.ThreadExecutor"}
