"""Settings for task-ferry-celery's tests. ``FERRY_TEST_DB=postgres`` runs them on the
local PostgreSQL (127.0.0.1:5432, database ``test``); the default is SQLite.

Brokers (see :mod:`ferry_celery_testproject.celery_app`): Redis database 11 only
(``FERRY_CELERY_REDIS_URL`` overrides it; the tests flush it), and RabbitMQ in a vhost
of this run's own, ``ferry_celery_<run id>``, created and deleted by the tests.

``FERRY_CELERY_RUN_ID`` is set here, in the test process, and inherited by every
worker it starts, so the workers agree with it on the vhost."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "task-ferry-celery-tests"
DEBUG = False
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "task_ferry",
    "task_ferry.testing",
    "task_ferry_celery",
    "ferry_celery_testproject.celeryapp",
]

if os.environ.get("FERRY_TEST_DB", "sqlite") == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ.get("FERRY_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("FERRY_PG_PORT", "5432"),
            "USER": os.environ.get("FERRY_PG_USER", "postgres"),
            "NAME": os.environ.get("FERRY_PG_NAME", "test"),
            "TEST": {"NAME": os.environ.get("FERRY_PG_TEST_NAME", f"test_ferry_celery_{os.getpid()}")},
        }
    }
else:
    # A file, not :memory:, so worker processes see the same data.
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(BASE_DIR / "db.sqlite3"),
            "TEST": {"NAME": os.environ.get("FERRY_SQLITE_TEST_NAME", f"/tmp/ferry_celery_test_{os.getpid()}.sqlite3")},
        }
    }

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

RUN_ID = os.environ.setdefault("FERRY_CELERY_RUN_ID", str(os.getpid()))
REDIS_BROKER_URL = os.environ.get("FERRY_CELERY_REDIS_URL", "redis://127.0.0.1:6379/11")
AMQP_VHOST = f"ferry_celery_{RUN_ID}"
AMQP_BROKER_URL = f"amqp://guest:guest@127.0.0.1:5672/{AMQP_VHOST}"

TASK_FERRY = {
    "EXECUTOR": {"BACKEND": "celery", "OPTIONS": {"APP": "ferry_celery_testproject.celery_app:redis_app"}},
    "PROGRESS_STORE": "database",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"task_ferry": {"handlers": ["console"], "level": "WARNING"}},
}
