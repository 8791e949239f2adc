"""Settings for task-ferry-drf's tests. ``FERRY_TEST_DB=postgres`` runs them on the
local PostgreSQL (127.0.0.1:5432, database ``test``); the default is SQLite.

The progress store is the ``redis`` store on the machine's Redis, database 4 only
(``FERRY_DRF_REDIS_URL`` overrides it); tests flush that database and never touch
another. Tests that need another store override ``TASK_FERRY``."""

import os

from task_ferry.testing.settings import *  # noqa: F403
from task_ferry.testing.settings import test_databases

TIME_ZONE = "UTC"
ROOT_URLCONF = "ferry_drf_testproject.urls"
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "rest_framework",
    "drf_spectacular",
    "task_ferry",
    "task_ferry_drf",
    "ferry_drf_testproject.drfapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
# Tests log in thousands of times (Basic auth for schemathesis): a fast hasher.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

REST_FRAMEWORK = {
    # DRF's default authentication (session + basic), stated for the reader.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
# OpenAPI 3.1, so the schema can say what each server-sent event's data holds (tests/test_schema.py
# also checks the 3.0 variant).
SPECTACULAR_SETTINGS = {
    "TITLE": "task-ferry jobs API (tests)",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "OAS_VERSION": os.environ.get("FERRY_DRF_OAS_VERSION", "3.1.0"),
}

DATABASES = test_databases("ferry_drf")


REDIS_TEST_URL = os.environ.get("FERRY_DRF_REDIS_URL", "redis://127.0.0.1:6379/4")

TASK_FERRY = {
    "EXECUTOR": "immediate",
    "PROGRESS_STORE": {"BACKEND": "redis", "OPTIONS": {"URL": REDIS_TEST_URL, "KEY_PREFIX": "ferry_drf_test:"}},
}
TASK_FERRY_DRF = {"SSE_KEEPALIVE": 1, "SSE_POLL_INTERVAL": 0.2}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "task_ferry": {"handlers": ["console"], "level": "WARNING"},
        "task_ferry_drf": {"handlers": ["console"], "level": "WARNING"},
    },
}
