"""The ``TASK_FERRY`` settings dict, read through one accessor.

Values are read on access, so ``override_settings(TASK_FERRY=...)`` just works;
the executor and progress-store instances built from them are cached and the
cache is dropped on Django's ``setting_changed`` signal.

=============================  ==============  =====================================================
key                            default         meaning
=============================  ==============  =====================================================
``EXECUTOR``                   ``"immediate"`` entry-point name or dotted path, or
                                               ``{"BACKEND": name_or_path, "OPTIONS": {...}}``
``PROGRESS_STORE``             ``"database"``  same forms; where running jobs publish progress
``PROGRESS_FLUSH_INTERVAL``    ``0.25``        seconds between two store writes of one job
``PROGRESS_CACHE_TIMEOUT``     ``3600``        seconds a progress snapshot lives in a TTL store
``JOB_EXPIRY_DAYS``            ``7``           ``cleanup_old_jobs`` deletes ended jobs older than this
``MAX_JOBS_PER_USER_PER_TYPE`` ``5``           default ``JobType.max_count``
``DEFAULT_QUEUE``              ``"default"``   queue for types without ``queue`` (0.1.1: ``CELERY_QUEUE``)
``HEARTBEAT_INTERVAL``         ``10``          seconds between two heartbeats of a running job
``HEARTBEAT_TIMEOUT``          ``60``          the reaper ends a started job whose heartbeat is older
``TIMEOUT_GRACE``              ``10``          seconds between SIGTERM and SIGKILL for a job past its
                                               timeout; also how long the reaper waits after a
                                               timeout before it steps in
=============================  ==============  =====================================================
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

DEFAULTS: dict[str, Any] = {
    "EXECUTOR": "immediate",
    "PROGRESS_STORE": "database",
    "PROGRESS_FLUSH_INTERVAL": 0.25,
    "PROGRESS_CACHE_TIMEOUT": 3600,
    "JOB_EXPIRY_DAYS": 7,
    "MAX_JOBS_PER_USER_PER_TYPE": 5,
    "DEFAULT_QUEUE": "default",
    "HEARTBEAT_INTERVAL": 10,
    "HEARTBEAT_TIMEOUT": 60,
    "TIMEOUT_GRACE": 10,
}

#: 0.1.1 keys that still work, mapped to their current name.
LEGACY_KEYS = {"CELERY_QUEUE": "DEFAULT_QUEUE"}


@dataclass(frozen=True)
class PluginSetting:
    """A parsed ``EXECUTOR`` / ``PROGRESS_STORE`` value."""

    backend: str
    options: dict = field(default_factory=dict)


def user_settings() -> dict:
    value = getattr(settings, "TASK_FERRY", None) or {}
    return value if isinstance(value, dict) else {}


def get_setting(key: str) -> Any:
    """Return one ``TASK_FERRY`` value (0.1.1 API). Legacy key names are honoured."""
    configured = user_settings()
    if key in LEGACY_KEYS:
        key = LEGACY_KEYS[key]
    if key in configured:
        return configured[key]
    for legacy, current in LEGACY_KEYS.items():
        if current == key and legacy in configured:
            return configured[legacy]
    try:
        return DEFAULTS[key]
    except KeyError:
        raise KeyError(f"TASK_FERRY has no setting {key!r}; known settings: {', '.join(sorted(DEFAULTS))}.") from None


def unknown_keys() -> list[tuple[str, str | None]]:
    """Keys in ``TASK_FERRY`` that are not settings, each with a close match if any."""
    known = set(DEFAULTS) | set(LEGACY_KEYS)
    out = []
    for key in user_settings():
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            out.append((key, close[0] if close else None))
    return out


def parse_plugin_setting(key: str) -> PluginSetting:
    """Parse ``EXECUTOR`` or ``PROGRESS_STORE``; raise ``ValueError`` naming the fix."""
    value = get_setting(key)
    if isinstance(value, str) and value.strip():
        return PluginSetting(value.strip(), {})
    if isinstance(value, dict):
        backend = value.get("BACKEND")
        options = value.get("OPTIONS", {})
        extra = set(value) - {"BACKEND", "OPTIONS"}
        if not isinstance(backend, str) or not backend.strip():
            raise ValueError(
                f'TASK_FERRY["{key}"] needs a "BACKEND" string (an entry-point name such as '
                f'"celery" or a dotted path to a class).'
            )
        if not isinstance(options, dict):
            raise ValueError(f'TASK_FERRY["{key}"]["OPTIONS"] must be a dict, got {type(options).__name__}.')
        if extra:
            raise ValueError(
                f'TASK_FERRY["{key}"] has unknown keys {sorted(extra)}; only "BACKEND" and "OPTIONS" are read.'
            )
        return PluginSetting(backend.strip(), dict(options))
    raise ValueError(
        f'TASK_FERRY["{key}"] must be a name or dotted path string, or a dict '
        f'{{"BACKEND": ..., "OPTIONS": {{...}}}}; got {value!r}.'
    )


def flush_interval() -> float:
    return float(get_setting("PROGRESS_FLUSH_INTERVAL"))


def heartbeat_interval() -> float:
    return float(get_setting("HEARTBEAT_INTERVAL"))


def heartbeat_timeout() -> float:
    return float(get_setting("HEARTBEAT_TIMEOUT"))


def timeout_grace() -> float:
    return float(get_setting("TIMEOUT_GRACE"))


_instances: dict[str, Any] = {}


def _build(key: str) -> Any:
    from .exceptions import ExecutorNotConfigured, ProgressStoreNotConfigured
    from .plugins import EXECUTORS, PROGRESS_STORES, PluginNotFound

    group, error = (
        (EXECUTORS, ExecutorNotConfigured) if key == "EXECUTOR" else (PROGRESS_STORES, ProgressStoreNotConfigured)
    )
    try:
        parsed = parse_plugin_setting(key)
        cls = group.load(parsed.backend)
    except (ValueError, PluginNotFound) as exc:
        raise error(str(exc)) from exc
    options = dict(parsed.options)
    if key == "PROGRESS_STORE":
        options.setdefault("TIMEOUT", get_setting("PROGRESS_CACHE_TIMEOUT"))
    from .executors.base import instantiate

    try:
        return instantiate(cls, options)
    except (TypeError, ValueError) as exc:
        raise error(f'TASK_FERRY["{key}"] = {parsed.backend!r}: bad OPTIONS: {exc}') from exc


def get_executor():
    """The configured executor instance (0.1.1 API), built once per settings value."""
    inst = _instances.get("EXECUTOR")
    if inst is None:
        inst = _instances["EXECUTOR"] = _build("EXECUTOR")
    return inst


def get_progress_store():
    """The configured progress store instance, built once per settings value."""
    inst = _instances.get("PROGRESS_STORE")
    if inst is None:
        inst = _instances["PROGRESS_STORE"] = _build("PROGRESS_STORE")
    return inst


def reset() -> None:
    """Forget built plugin instances (called when ``TASK_FERRY`` or a used setting changes)."""
    for inst in _instances.values():
        close = getattr(inst, "close", None)
        if callable(close):
            close()
    _instances.clear()


#: Plugin instances a forked child stopped using; kept referenced so that they are
#: never finalised there (finalising a connection would talk on the parent's socket).
_abandoned: list[Any] = []


def forget_after_fork() -> None:
    """In a forked child: drop the inherited plugin instances *without* closing them,
    so the child builds its own (the parent keeps using the originals)."""
    _abandoned.extend(_instances.values())
    _instances.clear()


@receiver(setting_changed)
def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in ("TASK_FERRY", "CACHES", "DATABASES"):
        reset()
