"""Test settings: core's building blocks (SQLite by default, PostgreSQL with
FERRY_TEST_DB=postgres) plus the kit's app, which holds its job model."""

from task_ferry.testing.settings import *  # noqa: F403
from task_ferry.testing.settings import FERRY_APPS, test_databases

DATABASES = test_databases("ferry_file_store_example")
INSTALLED_APPS = FERRY_APPS
