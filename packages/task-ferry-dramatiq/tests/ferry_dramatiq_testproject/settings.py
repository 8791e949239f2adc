"""Settings for task-ferry-dramatiq's tests. ``FERRY_TEST_DB=postgres`` runs them on the
local PostgreSQL (127.0.0.1:5432, database ``test``); the default is SQLite.

Brokers (see :mod:`ferry_dramatiq_testproject.brokers`): Redis database 7 only
(``FERRY_DRAMATIQ_REDIS_URL`` overrides it; the tests flush it), and RabbitMQ's
default vhost, where every queue of a run is named ``ferry_dramatiq_<run id>_...``
and deleted at the end of the run.

``FERRY_DRAMATIQ_RUN_ID`` is set here, in the test process, and inherited by every
worker it starts, so the workers agree with it on the queue names."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "task-ferry-dramatiq-tests"
DEBUG = False
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "task_ferry",
    "task_ferry.testing",
    "ferry_dramatiq_testproject.dramatiqapp",
]

if os.environ.get("FERRY_TEST_DB", "sqlite") == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ.get("FERRY_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("FERRY_PG_PORT", "5432"),
            "USER": os.environ.get("FERRY_PG_USER", "postgres"),
            "NAME": os.environ.get("FERRY_PG_NAME", "test"),
            "TEST": {"NAME": os.environ.get("FERRY_PG_TEST_NAME", f"test_ferry_dramatiq_{os.getpid()}")},
        }
    }
else:
    # A file, not :memory:, so worker processes see the same data.
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(BASE_DIR / "db.sqlite3"),
            "TEST": {
                "NAME": os.environ.get("FERRY_SQLITE_TEST_NAME", f"/tmp/ferry_dramatiq_test_{os.getpid()}.sqlite3")
            },
        }
    }

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

RUN_ID = os.environ.setdefault("FERRY_DRAMATIQ_RUN_ID", str(os.getpid()))
#: Prefix of every RabbitMQ queue (and Redis key) this run creates.
QUEUE_PREFIX = f"ferry_dramatiq_{RUN_ID}"
REDIS_BROKER_URL = os.environ.get("FERRY_DRAMATIQ_REDIS_URL", "redis://127.0.0.1:6379/7")
AMQP_BROKER_URL = os.environ.get("FERRY_DRAMATIQ_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")

TASK_FERRY = {
    "EXECUTOR": {"BACKEND": "dramatiq", "OPTIONS": {"BROKER": "ferry_dramatiq_testproject.brokers:redis_broker"}},
    "PROGRESS_STORE": "database",
    "DEFAULT_QUEUE": f"{QUEUE_PREFIX}_default",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"task_ferry": {"handlers": ["console"], "level": "WARNING"}},
}
