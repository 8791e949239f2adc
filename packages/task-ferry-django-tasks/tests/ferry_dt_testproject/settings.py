"""Settings for task-ferry-django-tasks's tests. ``FERRY_TEST_DB=postgres`` runs them on the
local PostgreSQL (127.0.0.1:5432, database ``test``); the default is SQLite (a file, so
``db_worker`` subprocesses share it).

Two task backends: ``default`` is django-tasks-db's ``DatabaseBackend`` (run by real
``db_worker`` processes, any queue accepted), ``immediate`` the framework's immediate backend.
The task framework is Django 6's ``django.tasks`` or, on Django 5.2, the ``django_tasks`` backport.
"""

import os
from pathlib import Path

import django

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "task-ferry-django-tasks-tests"
DEBUG = False
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

BACKPORT = django.VERSION < (6, 0)

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    *(["django_tasks"] if BACKPORT else []),
    "django_tasks_db",
    "task_ferry",
    "task_ferry.testing",
]

if os.environ.get("FERRY_TEST_DB", "sqlite") == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ.get("FERRY_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("FERRY_PG_PORT", "5432"),
            "USER": os.environ.get("FERRY_PG_USER", "postgres"),
            "NAME": os.environ.get("FERRY_PG_NAME", "test"),
            "TEST": {"NAME": os.environ.get("FERRY_PG_TEST_NAME", f"test_ferry_dt_{os.getpid()}")},
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(BASE_DIR / "db.sqlite3"),
            # Workers, the test process and the progress store's own connection write to one file.
            "OPTIONS": {"timeout": 20},
            "TEST": {"NAME": os.environ.get("FERRY_SQLITE_TEST_NAME", f"/tmp/test_ferry_dt_{os.getpid()}.sqlite3")},
        }
    }

IMMEDIATE_BACKEND = f"{'django_tasks' if BACKPORT else 'django.tasks'}.backends.immediate.ImmediateBackend"

TASKS = {
    "default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": []},
    "immediate": {"BACKEND": IMMEDIATE_BACKEND},
}

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

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
