"""Settings for task-ferry-dramatiq's tests. ``FERRY_TEST_DB=postgres`` runs them on the
local PostgreSQL (127.0.0.1:5432, database ``test``); the default is SQLite.

Brokers (see :mod:`ferry_dramatiq_testproject.brokers`): Redis database 7 only
(``FERRY_DRAMATIQ_REDIS_URL`` overrides it; the tests flush it), and RabbitMQ's
default vhost, where every queue of a run is named ``ferry_dramatiq_<run id>_...``
and deleted at the end of the run.

``FERRY_DRAMATIQ_RUN_ID`` is set here, in the test process, and inherited by every
worker it starts, so the workers agree with it on the queue names."""

import os

from task_ferry.testing.settings import *  # noqa: F403
from task_ferry.testing.settings import test_databases

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "task_ferry",
    "task_ferry.testing",
    "ferry_dramatiq_testproject.dramatiqapp",
]

DATABASES = test_databases("ferry_dramatiq")


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
