"""Settings for task-ferry-celery's tests. ``FERRY_TEST_DB=postgres`` runs them on the
local PostgreSQL (127.0.0.1:5432, database ``test``); the default is SQLite.

Brokers (see :mod:`ferry_celery_testproject.celery_app`): Redis database 11 only
(``FERRY_CELERY_REDIS_URL`` overrides it; the tests flush it), and RabbitMQ in a vhost
of this run's own, ``ferry_celery_<run id>``, created and deleted by the tests.

``FERRY_CELERY_RUN_ID`` is set here, in the test process, and inherited by every
worker it starts, so the workers agree with it on the vhost."""

import os

from task_ferry.testing.settings import *  # noqa: F403
from task_ferry.testing.settings import test_databases

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "task_ferry",
    "task_ferry.testing",
    "task_ferry_celery",
    "ferry_celery_testproject.celeryapp",
]

DATABASES = test_databases("ferry_celery")


RUN_ID = os.environ.setdefault("FERRY_CELERY_RUN_ID", str(os.getpid()))
REDIS_BROKER_URL = os.environ.get("FERRY_CELERY_REDIS_URL", "redis://127.0.0.1:6379/11")
AMQP_VHOST = f"ferry_celery_{RUN_ID}"
AMQP_BROKER_URL = f"amqp://guest:guest@127.0.0.1:5672/{AMQP_VHOST}"

TASK_FERRY = {
    "EXECUTOR": {"BACKEND": "celery", "OPTIONS": {"APP": "ferry_celery_testproject.celery_app:redis_app"}},
    "PROGRESS_STORE": "database",
}
