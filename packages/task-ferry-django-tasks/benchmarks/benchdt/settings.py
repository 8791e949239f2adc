"""Settings of the django-tasks benchmark: PostgreSQL database ``ferry_bench_dt`` (created and
dropped by ``bench_django_tasks.py``), django-tasks-db's ``DatabaseBackend``, the ferry
executor on it, and the ``database`` progress store."""

import os

import django

SECRET_KEY = "task-ferry-django-tasks-bench"
DEBUG = False
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    *(["django_tasks"] if django.VERSION < (6, 0) else []),
    "django_tasks_db",
    "task_ferry",
    "benchdt",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": os.environ.get("FERRY_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("FERRY_PG_PORT", "5432"),
        "USER": os.environ.get("FERRY_PG_USER", "postgres"),
        "NAME": os.environ.get("FERRY_BENCH_DB", "ferry_bench_dt"),
        # db_worker calls close_old_connections() around every task: with the default 0 it
        # reconnects for each one. Persistent connections are what a worker should run with.
        "CONN_MAX_AGE": int(os.environ.get("FERRY_BENCH_CONN_MAX_AGE", "60")),
    }
}

TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": []}}

TASK_FERRY = {"EXECUTOR": "django_tasks", "PROGRESS_STORE": "database", "MAX_JOBS_PER_USER_PER_TYPE": 100_000}
