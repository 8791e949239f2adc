"""Settings for core's own tests (``FERRY_TEST_DB=postgres`` for PostgreSQL; see
task_ferry.testing.settings)."""

from task_ferry.testing.settings import *  # noqa: F403
from task_ferry.testing.settings import FERRY_APPS, test_databases

ROOT_URLCONF = "ferry_core_testproject.urls"
DATABASES = test_databases("ferry_core")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.sessions",
    "django.contrib.messages",
    *FERRY_APPS,
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

TASK_FERRY = {
    "EXECUTOR": "immediate",
    "PROGRESS_STORE": "database",
}
