"""Django system checks for task-ferry settings and plugins.

=====================  ==========================================================
id                     problem
=====================  ==========================================================
``task_ferry.E001``    ``TASK_FERRY`` is not a dict
``task_ferry.E002``    the executor cannot be found or imported (with the pip line)
``task_ferry.E003``    the progress store cannot be found or imported
``task_ferry.E004``    a setting has a bad value
``task_ferry.W001``    an unknown key in ``TASK_FERRY`` (with the close match)
``task_ferry.W004``    the store is not visible from the executor's worker processes
``task_ferry.E005``    a plugin's OPTIONS are rejected by the plugin
``task_ferry.E010``    a plugin was built for another plugin-protocol version
``task_ferry.E011``    a plugin lacks a method or flag of its protocol
``task_ferry.E007+``   reported by the plugins themselves (``check()``)
=====================  ==========================================================
"""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from . import PROTOCOL_VERSION
from .conf import get_setting, parse_plugin_setting, unknown_keys, user_settings
from .executors.base import instantiate
from .plugins import EXECUTORS, PROGRESS_STORES, PluginNotFound

EXECUTOR_FLAGS = (
    "supports_defer_on_commit",
    "out_of_process",
    "supports_queues",
    "supports_priority",
    "supports_delay",
    "supports_revoke",
    "supports_kill",
)
STORE_FLAGS = ("supports_cross_process", "supports_mid_transaction", "supports_subscribe")
EXECUTOR_METHODS = ("submit", "revoke", "kill")
STORE_METHODS = ("write", "read_many", "request_cancel", "clear", "subscribe")


def _positive_number(key: str, integer: bool = False, allow_zero: bool = False) -> list:
    value = get_setting(key)
    kind = int if integer else (int, float)
    ok = isinstance(value, kind) and not isinstance(value, bool) and (value > 0 or (allow_zero and value == 0))
    if ok:
        return []
    what = "a positive whole number" if integer else "a positive number"
    return [
        Error(
            f'TASK_FERRY["{key}"] must be {what}, got {value!r}.',
            hint=f'Set TASK_FERRY["{key}"] to {what} or remove it to use the default.',
            id="task_ferry.E004",
        )
    ]


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _load(key: str, group, missing_id: str):
    try:
        parsed = parse_plugin_setting(key)
    except ValueError as exc:
        return None, [Error(str(exc), id="task_ferry.E004")]
    try:
        cls = group.load(parsed.backend)
    except PluginNotFound as exc:
        name = group.resolve_name(parsed.backend)
        return None, [Error(str(exc), hint=group.install_hint(name), id=missing_id)]
    errors = []
    version = getattr(cls, "protocol_version", None)
    if version is not None and version != PROTOCOL_VERSION:
        errors.append(
            Error(
                f"The {group.kind} {parsed.backend!r} ({cls.__module__}.{cls.__qualname__}) was built for "
                f"plugin protocol {version}; this task-ferry-core speaks protocol {PROTOCOL_VERSION}.",
                hint="Install versions of task-ferry-core and the plugin that match (see the plugin's CHANGELOG).",
                id="task_ferry.E010",
            )
        )
    options = dict(parsed.options)
    if key == "PROGRESS_STORE":
        options.setdefault("TIMEOUT", get_setting("PROGRESS_CACHE_TIMEOUT"))
    try:
        instance = instantiate(cls, options)
    except (TypeError, ValueError) as exc:
        errors.append(Error(f'TASK_FERRY["{key}"] = {parsed.backend!r}: bad OPTIONS: {exc}', id="task_ferry.E005"))
        return None, errors
    return instance, errors


def _flag(instance, name: str, default=None):
    try:
        return getattr(instance, name, default)
    except Exception:  # a flag computed from configuration that is broken; reported elsewhere
        return default


def _protocol_errors(instance, kind: str, flags, methods) -> list:
    missing = [f for f in flags if not isinstance(_flag(instance, f), bool)]
    missing += [f"{m}()" for m in methods if not callable(getattr(instance, m, None))]
    if not missing:
        return []
    return [
        Error(
            f"The {kind} {type(instance).__name__} does not implement the {kind} protocol: missing {missing}.",
            hint="See task_ferry.protocols for the contract, and prove the plugin with task_ferry.testing.",
            id="task_ferry.E011",
        )
    ]


@register(Tags.compatibility)
def check_settings(app_configs=None, **kwargs) -> list:
    raw = getattr(settings, "TASK_FERRY", None)
    if raw is not None and not isinstance(raw, dict):
        return [
            Error(
                f"TASK_FERRY must be a dict, got {type(raw).__name__}.",
                hint='For example TASK_FERRY = {"EXECUTOR": "celery"}.',
                id="task_ferry.E001",
            )
        ]
    errors: list = []
    for key, close in unknown_keys():
        errors.append(
            Warning(
                f"TASK_FERRY has an unknown key {key!r}; it is ignored.",
                hint=f"Did you mean {close!r}?" if close else "Remove it; see task_ferry.conf for the settings.",
                id="task_ferry.W001",
            )
        )
    errors += _positive_number("PROGRESS_FLUSH_INTERVAL")
    errors += _positive_number("PROGRESS_CACHE_TIMEOUT", integer=True)
    errors += _positive_number("JOB_EXPIRY_DAYS", integer=True, allow_zero=True)
    errors += _positive_number("MAX_JOBS_PER_USER_PER_TYPE", integer=True)
    errors += _positive_number("HEARTBEAT_INTERVAL")
    errors += _positive_number("HEARTBEAT_TIMEOUT")
    errors += _positive_number("TIMEOUT_GRACE", allow_zero=True)
    beat, limit = get_setting("HEARTBEAT_INTERVAL"), get_setting("HEARTBEAT_TIMEOUT")
    if _number(beat) and _number(limit) and 0 < limit <= beat:
        errors.append(
            Error(
                f'TASK_FERRY["HEARTBEAT_TIMEOUT"] ({limit}s) must be longer than HEARTBEAT_INTERVAL ({beat}s), '
                f"or the reaper ends healthy jobs between two of their heartbeats.",
                hint="Make HEARTBEAT_TIMEOUT several times HEARTBEAT_INTERVAL (defaults: 60 and 10).",
                id="task_ferry.E004",
            )
        )
    queue = get_setting("DEFAULT_QUEUE")
    if not isinstance(queue, str) or not queue:
        errors.append(
            Error(f'TASK_FERRY["DEFAULT_QUEUE"] must be a non-empty string, got {queue!r}.', id="task_ferry.E004")
        )
    interval, ttl = get_setting("PROGRESS_FLUSH_INTERVAL"), get_setting("PROGRESS_CACHE_TIMEOUT")
    if isinstance(interval, int | float) and isinstance(ttl, int | float) and 0 < ttl <= interval:
        errors.append(
            Error(
                f'TASK_FERRY["PROGRESS_CACHE_TIMEOUT"] ({ttl}s) must be longer than PROGRESS_FLUSH_INTERVAL '
                f"({interval}s), or snapshots expire between two flushes.",
                id="task_ferry.E004",
            )
        )

    executor, executor_errors = _load("EXECUTOR", EXECUTORS, "task_ferry.E002")
    store, store_errors = _load("PROGRESS_STORE", PROGRESS_STORES, "task_ferry.E003")
    errors += executor_errors + store_errors
    # A plugin's own check() comes first: its flags may need the configuration it reports on.
    executor_ok = store_ok = False
    if executor is not None:
        own = _plugin_check(executor)
        errors += own or _protocol_errors(executor, "executor", EXECUTOR_FLAGS, EXECUTOR_METHODS)
        executor_ok = not own
    if store is not None:
        own = _plugin_check(store)
        errors += own or _protocol_errors(store, "progress store", STORE_FLAGS, STORE_METHODS)
        store_ok = not own
    if (
        executor_ok
        and store_ok
        and _flag(executor, "out_of_process", False)
        and _flag(store, "supports_cross_process", True) is False
    ):
        errors.append(
            Warning(
                f"The progress store {type(store).__name__} is only visible inside one process (for example "
                f"LocMemCache), but the executor {type(executor).__name__} runs jobs in worker processes: "
                f"progress and cancel requests will not reach them.",
                hint='Use TASK_FERRY["PROGRESS_STORE"] = "database" (the default), "redis", or the "cache" store '
                "on a shared cache such as Redis.",
                id="task_ferry.W004",
            )
        )
    return errors


def _plugin_check(instance) -> list:
    check = getattr(instance, "check", None)
    if not callable(check):
        return []
    try:
        return list(check())
    except Exception as exc:
        return [Error(f"{type(instance).__name__}.check() raised {type(exc).__name__}: {exc}", id="task_ferry.E011")]


__all__ = ["check_settings", "user_settings"]
