"""The tutorial's project: SQLite, Django's task framework with the database
backend of django-tasks-db, and task-ferry's defaults (the ``database`` store)."""

import os

SECRET_KEY = "task-ferry-tutorial"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("TUTORIAL_DB", "db.sqlite3"),
    }
}

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django_tasks_db",
    "task_ferry",
    "reports",
]
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
TASK_FERRY = {"EXECUTOR": "django_tasks"}
