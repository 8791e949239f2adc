"""Settings of the REST API: the ``TASK_FERRY_DRF`` dict, read on access so
``override_settings`` just works (a separate dict, so core's check of unknown
``TASK_FERRY`` keys stays meaningful).

=======================  ===========  =========================================================
key                      default      meaning
=======================  ===========  =========================================================
``PAGE_SIZE``            ``50``       list page size when ``limit`` is not given (0.1.1's)
``MAX_PAGE_SIZE``        ``200``      larger ``limit`` values are capped to this (0.1.1's cap)
``HEALTH_TOKEN``         ``None``     secret accepted in ``X-Ferry-Health-Token`` by the health
                                      endpoint (staff users need no token); None: staff only
``STALLED_AFTER``        ``600``      seconds a running job may go without progress before the
                                      health endpoint reports it as stalled
``FAILURE_WINDOW``       ``3600``     seconds over which the health endpoint's failure rate is taken
``SSE_KEEPALIVE``        ``15``       seconds between keep-alive comments on an idle event stream;
                                      also how often the stream re-checks the database
``SSE_POLL_INTERVAL``    ``0.5``      seconds between store reads when the store has no live
                                      channel, and always under ASGI
``SSE_MAX_DURATION``     ``3600``     seconds after which a stream is closed (clients reconnect);
                                      bounds what a stuck job's watcher holds
=======================  ===========  =========================================================
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    "PAGE_SIZE": 50,
    "MAX_PAGE_SIZE": 200,
    "HEALTH_TOKEN": None,
    "STALLED_AFTER": 600,
    "FAILURE_WINDOW": 3600,
    "SSE_KEEPALIVE": 15,
    "SSE_POLL_INTERVAL": 0.5,
    "SSE_MAX_DURATION": 3600,
}

#: Keys whose value must be a positive number (checked by ``task_ferry_drf.E001``).
POSITIVE = (
    "PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "STALLED_AFTER",
    "FAILURE_WINDOW",
    "SSE_KEEPALIVE",
    "SSE_POLL_INTERVAL",
    "SSE_MAX_DURATION",
)
INTEGER = ("PAGE_SIZE", "MAX_PAGE_SIZE")


def user_settings() -> dict:
    value = getattr(settings, "TASK_FERRY_DRF", None) or {}
    return value if isinstance(value, dict) else {}


def get(key: str) -> Any:
    """One ``TASK_FERRY_DRF`` value, or its default."""
    if key not in DEFAULTS:
        raise KeyError(f"TASK_FERRY_DRF has no setting {key!r}; known settings: {', '.join(sorted(DEFAULTS))}.")
    return user_settings().get(key, DEFAULTS[key])
