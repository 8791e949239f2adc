"""The demo project. Zero set-up by default: SQLite, Django's task framework with
django-tasks-db's database backend (a ``db_worker`` runs the jobs), and task-ferry's
``database`` progress store. ``FERRY_DEMO_ENGINE=celery`` switches to Celery workers
and the ``redis`` progress store (Redis at ``FERRY_DEMO_REDIS_URL``).

Environment:

- ``FERRY_DEMO_ENGINE``: ``django-tasks`` (default) or ``celery``;
- ``FERRY_DEMO_STATE_DIR``: where the SQLite file lives (default ``<repo>/.ferry/``);
- ``FERRY_DEMO_REDIS_URL``: Redis for the Celery broker and the store (default
  ``redis://127.0.0.1:6379/3``);
- ``FERRY_DEMO_DEBUG=1``: Django's ``DEBUG``.
"""

import os
from pathlib import Path

import django
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
STATE_DIR = Path(os.environ.get("FERRY_DEMO_STATE_DIR") or BASE_DIR.parent / ".ferry")
STATE_DIR.mkdir(parents=True, exist_ok=True)

ENGINES = ("django-tasks", "celery")
ENGINE = os.environ.get("FERRY_DEMO_ENGINE", "django-tasks").strip().lower().replace("_", "-")
if ENGINE not in ENGINES:
    raise ImproperlyConfigured(
        f"FERRY_DEMO_ENGINE={ENGINE!r} is not a demo engine; use one of {', '.join(ENGINES)} "
        "(e.g. FERRY_DEMO_ENGINE=celery ./dev demo)."
    )
REDIS_URL = os.environ.get("FERRY_DEMO_REDIS_URL", "redis://127.0.0.1:6379/3")

SECRET_KEY = "task-ferry-demo-not-secret"
DEBUG = os.environ.get("FERRY_DEMO_DEBUG", "") not in ("", "0")
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "demo_project.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "task_ferry",
    "task_ferry_drf",
    "demo_app",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
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
STATIC_URL = "static/"

# WAL lets the web server read while the worker writes; IMMEDIATE transactions take the
# write lock up front instead of failing to upgrade a read lock under contention.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(STATE_DIR / f"demo-{ENGINE}.sqlite3"),
        "OPTIONS": {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
        },
    }
}

REST_FRAMEWORK = {
    # The page signs the browser in with a session; the API keeps its CSRF check.
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
}

TASK_FERRY_DRF = {"SSE_POLL_INTERVAL": 0.25}

# Short heartbeats: the demo runs the reaper every few seconds (see manage.py demo), so a job
# whose worker was killed (a stop that could not wait for it) ends as failed soon after.
HEARTBEATS = {"HEARTBEAT_INTERVAL": 2, "HEARTBEAT_TIMEOUT": 10}

if ENGINE == "django-tasks":
    # Django 6 has the task framework built in; on 5.2 it comes from the django-tasks backport.
    if django.VERSION < (6, 0):
        INSTALLED_APPS.insert(INSTALLED_APPS.index("task_ferry"), "django_tasks")
    INSTALLED_APPS.insert(INSTALLED_APPS.index("task_ferry"), "django_tasks_db")
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
    TASK_FERRY = {
        "EXECUTOR": "django_tasks",
        "PROGRESS_STORE": {"BACKEND": "database", "OPTIONS": {"SQLITE_TIMEOUT": 1}},
        "PROGRESS_FLUSH_INTERVAL": 0.2,
        **HEARTBEATS,
    }
else:
    INSTALLED_APPS.insert(INSTALLED_APPS.index("task_ferry") + 1, "task_ferry_celery")
    CELERY_BROKER_URL = REDIS_URL
    CELERY_WORKER_PREFETCH_MULTIPLIER = 1
    CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
    CELERY_WORKER_HIJACK_ROOT_LOGGER = False
    TASK_FERRY = {
        "EXECUTOR": {"BACKEND": "celery", "OPTIONS": {"APP": "demo_project.celery:app"}},
        "PROGRESS_STORE": {"BACKEND": "redis", "OPTIONS": {"URL": REDIS_URL, "KEY_PREFIX": "ferry-demo:"}},
        "PROGRESS_FLUSH_INTERVAL": 0.2,
        **HEARTBEATS,
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"short": {"format": "%(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "short"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    # One line per request (the page polls and streams) would drown the terminal.
    "loggers": {"django.server": {"level": "ERROR" if not DEBUG else "INFO"}},
}
