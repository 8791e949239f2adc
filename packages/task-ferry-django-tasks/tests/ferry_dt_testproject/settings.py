"""Settings for task-ferry-django-tasks's tests. ``FERRY_TEST_DB=postgres`` runs them on the
local PostgreSQL (127.0.0.1:5432, database ``test``); the default is SQLite (a file, so
``db_worker`` subprocesses share it).

Two task backends: ``default`` is django-tasks-db's ``DatabaseBackend`` (run by real
``db_worker`` processes, any queue accepted), ``immediate`` the framework's immediate backend.
The task framework is Django 6's ``django.tasks`` or, on Django 5.2, the ``django_tasks`` backport.
"""

import django

from task_ferry.testing.settings import *  # noqa: F403
from task_ferry.testing.settings import test_databases

BACKPORT = django.VERSION < (6, 0)

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    *(["django_tasks"] if BACKPORT else []),
    "django_tasks_db",
    "task_ferry",
    "task_ferry.testing",
]

DATABASES = test_databases("ferry_dt", sqlite_options={"timeout": 20})

IMMEDIATE_BACKEND = f"{'django_tasks' if BACKPORT else 'django.tasks'}.backends.immediate.ImmediateBackend"

TASKS = {
    "default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": []},
    "immediate": {"BACKEND": IMMEDIATE_BACKEND},
}


TASK_FERRY = {
    "EXECUTOR": "django_tasks",
    "PROGRESS_STORE": "database",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "task_ferry": {"handlers": ["console"], "level": "WARNING"},
        "task_ferry_django_tasks": {"handlers": ["console"], "level": "WARNING"},
    },
}
