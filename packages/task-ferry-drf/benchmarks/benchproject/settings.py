"""One Django project served twice by the API benchmark (``bench_api.py``).

``FERRY_BENCH_SIDE`` picks what is mounted at ``/api/jobs/``:

``ours``        task-ferry-drf, progress in the ``redis`` store (task-ferry-redis)
``ours-cache``  task-ferry-drf, progress in core's ``cache`` store over Django's RedisCache
``v011``        django-task-ferry 0.1.1's own API, progress in Django's RedisCache (as 0.1.1 does)

Everything else is shared: the PostgreSQL database ``FERRY_BENCH_DB``, Redis database 10
(keys of both formats are seeded), the user, its session, and the counting middleware.
"""

import os

SIDE = os.environ.get("FERRY_BENCH_SIDE", "ours")
REDIS_URL = "redis://127.0.0.1:6379/10"

SECRET_KEY = "task-ferry-drf-benchmark"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "benchproject.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "rest_framework",
    "task_ferry",
    *([] if SIDE == "v011" else ["task_ferry_drf"]),
    "benchapp",
]
MIDDLEWARE = [
    # Outermost, so it counts the session and user lookups too.
    "benchproject.counting.CountingMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": "127.0.0.1",
        "PORT": "5432",
        "USER": "postgres",
        "NAME": os.environ.get("FERRY_BENCH_DB", "ferry_drf_bench"),
        "CONN_MAX_AGE": int(os.environ.get("FERRY_BENCH_CONN_MAX_AGE", "0")),
    }
}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}

if SIDE == "ours":
    TASK_FERRY = {
        "EXECUTOR": "immediate",
        "PROGRESS_STORE": {"BACKEND": "redis", "OPTIONS": {"URL": REDIS_URL, "KEY_PREFIX": "ferry_bench:"}},
    }
elif SIDE == "ours-cache":
    TASK_FERRY = {"EXECUTOR": "immediate", "PROGRESS_STORE": "cache"}
else:
    TASK_FERRY = {"EXECUTOR": "task_ferry.executors.immediate.ImmediateExecutor"}
