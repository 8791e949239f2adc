"""Settings for core's own tests. ``FERRY_TEST_DB=postgres`` runs them on the
local PostgreSQL (127.0.0.1:5432, database ``test``); the default is SQLite."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "task-ferry-tests"
DEBUG = False
USE_TZ = True
ROOT_URLCONF = "ferry_core_testproject.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "task_ferry",
    "task_ferry.testing",
    "ferry_core_testproject.testapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

if os.environ.get("FERRY_TEST_DB", "sqlite") == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ.get("FERRY_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("FERRY_PG_PORT", "5432"),
            "USER": os.environ.get("FERRY_PG_USER", "postgres"),
            "NAME": os.environ.get("FERRY_PG_NAME", "test"),
            "TEST": {"NAME": os.environ.get("FERRY_PG_TEST_NAME", f"test_ferry_core_{os.getpid()}")},
        }
    }
else:
    # A file, not :memory:, so the stores' own connections and subprocesses see the same data.
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(BASE_DIR / "db.sqlite3"),
            "TEST": {"NAME": os.environ.get("FERRY_SQLITE_TEST_NAME", f"/tmp/ferry_core_test_{os.getpid()}.sqlite3")},
        }
    }

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

TASK_FERRY = {
    "EXECUTOR": "immediate",
    "PROGRESS_STORE": "database",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"task_ferry": {"handlers": ["console"], "level": "WARNING"}},
}
