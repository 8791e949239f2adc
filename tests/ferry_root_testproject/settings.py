"""Settings of the root tests (``tests/``): every installed distribution, real workers.

``FERRY_TEST_DB=postgres`` runs them on the local PostgreSQL (127.0.0.1:5432,
database ``test``); the default is SQLite, in a file so that worker processes
share it. Plugins are added when their distribution is installed, so the
failure tests run with whatever has landed (and say which executors they
skipped, and why).

The private Redis the failure tests stop and start again is created by the
tests themselves; its URL reaches this module (in the test process and in
every worker) through ``FERRY_CHAOS_REDIS_URL``.
"""

import os
from importlib.util import find_spec
from pathlib import Path

import django

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "task-ferry-root-tests"
DEBUG = False
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

HAS_CELERY = find_spec("task_ferry_celery") is not None and find_spec("celery") is not None
HAS_DJANGO_TASKS = find_spec("task_ferry_django_tasks") is not None and find_spec("django_tasks_db") is not None
HAS_RQ = find_spec("task_ferry_rq") is not None and find_spec("rq") is not None
HAS_DRAMATIQ = find_spec("task_ferry_dramatiq") is not None and find_spec("dramatiq") is not None
#: Dramatiq's RabbitMQ broker needs pika (``dramatiq[rabbitmq]``).
HAS_PIKA = find_spec("pika") is not None
BACKPORT = django.VERSION < (6, 0)

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "task_ferry",
    "task_ferry.testing",
    "ferry_root_testproject.chaos",
]
if HAS_CELERY:
    INSTALLED_APPS.append("task_ferry_celery")
if HAS_RQ:
    INSTALLED_APPS.append("task_ferry_rq")  # manage.py ferry_rqworker
if HAS_DJANGO_TASKS:
    INSTALLED_APPS += [*(["django_tasks"] if BACKPORT else []), "django_tasks_db"]
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": []}}

if os.environ.get("FERRY_TEST_DB", "sqlite") == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ.get("FERRY_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("FERRY_PG_PORT", "5432"),
            "USER": os.environ.get("FERRY_PG_USER", "postgres"),
            "NAME": os.environ.get("FERRY_PG_NAME", "test"),
            "TEST": {"NAME": os.environ.get("FERRY_PG_TEST_NAME", f"test_ferry_root_{os.getpid()}")},
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(BASE_DIR / "db.sqlite3"),
            "TEST": {"NAME": os.environ.get("FERRY_SQLITE_TEST_NAME", f"/tmp/ferry_root_test_{os.getpid()}.sqlite3")},
            # Several workers, two reapers and the test write at once: wait for the lock rather than fail.
            "OPTIONS": {"timeout": 30},
        }
    }

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

TASK_FERRY = {"EXECUTOR": "immediate", "PROGRESS_STORE": "database"}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"task_ferry": {"handlers": ["console"], "level": "WARNING"}},
}
