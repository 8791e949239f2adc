"""Deprecated: ``include("task_ferry.api.urls")`` from 0.1.1.

Forwards to ``task_ferry_drf.urls`` (``pip install task-ferry-drf``) with a
``DeprecationWarning``; use ``include("task_ferry_drf.urls")`` instead. Same
URL names and namespace (``task_ferry``).

Importing this module does nothing: ``task_ferry_drf`` (and Django REST
framework) are imported only when Django reads ``urlpatterns``, so core stays
importable without them.
"""

from __future__ import annotations

import warnings
from typing import Any

_FORWARDED = ("urlpatterns", "app_name")


def __getattr__(name: str) -> Any:
    if name not in _FORWARDED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from task_ferry_drf import urls
    except ImportError as exc:
        raise ImportError(
            'include("task_ferry.api.urls") needs the REST API, which is now the task-ferry-drf '
            'distribution: pip install task-ferry-drf, add "rest_framework" and "task_ferry_drf" to '
            'INSTALLED_APPS, and use include("task_ferry_drf.urls").'
        ) from exc
    warnings.warn(
        'include("task_ferry.api.urls") is deprecated; use include("task_ferry_drf.urls") '
        "(same URLs, names and namespace).",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(urls, name)
