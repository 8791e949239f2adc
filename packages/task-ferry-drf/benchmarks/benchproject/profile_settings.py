"""``profile_api.py``'s settings: the benchmark project on its own database and Redis database
(3), reusing connections, without the counting middleware. ``FERRY_PROFILE_TZ`` sets
``TIME_ZONE`` (default ``UTC``, as ``startproject`` writes it)."""

import os

from .settings import *  # noqa: F403
from .settings import DATABASES, MIDDLEWARE

REDIS_URL = "redis://127.0.0.1:6379/3"
TIME_ZONE = os.environ.get("FERRY_PROFILE_TZ", "UTC")
DATABASES["default"].update(NAME="ferry_drf_profile", CONN_MAX_AGE=600)
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
TASK_FERRY = {
    "EXECUTOR": "immediate",
    "PROGRESS_STORE": {"BACKEND": "redis", "OPTIONS": {"URL": REDIS_URL, "KEY_PREFIX": "ferry_profile:"}},
}
MIDDLEWARE = [m for m in MIDDLEWARE if "counting" not in m]
