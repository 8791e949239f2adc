"""System checks (``task_ferry.checks``) and the ``TASK_FERRY`` settings accessor.

Each check id fires for its misconfiguration and its message or hint names the
fix; a clean configuration produces no ``task_ferry`` message; 0.1.1 keys and
dotted paths keep working; ``override_settings`` takes effect at once.
"""

from __future__ import annotations

import pytest
from django.core.checks import Error, Warning, run_checks
from django.test import override_settings

from task_ferry import PROTOCOL_VERSION
from task_ferry.checks import check_settings
from task_ferry.conf import flush_interval, get_executor, get_progress_store, get_setting
from task_ferry.exceptions import ExecutorNotConfigured, ProgressStoreNotConfigured
from task_ferry.executors.base import BaseExecutor
from task_ferry.executors.immediate import ImmediateExecutor
from task_ferry.handler import JobHandler
from task_ferry.plugins import EXECUTORS, PROGRESS_STORES
from task_ferry.stores.cache import CacheProgressStore
from task_ferry.stores.database import DatabaseProgressStore

HERE = __name__


class WorkerExecutor(BaseExecutor):
    """Runs jobs in other processes (like Celery): needs a cross-process store."""

    supports_defer_on_commit = True
    out_of_process = True

    def submit(self, dispatch):
        return None


class FutureExecutor(WorkerExecutor):
    protocol_version = PROTOCOL_VERSION + 1


class ChattyExecutor(WorkerExecutor):
    def check(self):
        return [Warning("broker URL looks odd", id="myplugin.W001")]


class CrashingCheckExecutor(WorkerExecutor):
    def check(self):
        raise RuntimeError("check exploded")


class FlaglessExecutor:
    """Has ``submit`` but declares none of the protocol's flags nor ``revoke`` / ``kill``."""

    protocol_version = PROTOCOL_VERSION

    def __init__(self, options):
        pass

    def submit(self, dispatch):
        return None


class WriteOnlyStore:
    protocol_version = PROTOCOL_VERSION
    supports_cross_process = True
    supports_mid_transaction = True
    supports_subscribe = False

    def __init__(self, options):
        pass

    def write(self, snapshot):
        return False


def _checks(task_ferry, **other_settings) -> list:
    with override_settings(TASK_FERRY=task_ferry, **other_settings):
        return check_settings()


def _only(messages: list, check_id: str):
    found = [m for m in messages if m.id == check_id]
    assert len(found) == 1, f"expected one {check_id}, got {[(m.id, m.msg) for m in messages]}"
    return found[0]


@pytest.fixture
def uninstall(monkeypatch):
    """``uninstall(group, name)``: hide one plugin's entry point, as if its
    distribution were not installed (whatever this environment has)."""

    def hide(group, name: str) -> None:
        installed = group.entry_points
        monkeypatch.setattr(group, "entry_points", lambda: {k: v for k, v in installed().items() if k != name})

    return hide


# ── A clean configuration ──────────────────────────────────────────────────────


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"EXECUTOR": "immediate", "PROGRESS_STORE": "database"},
        {"EXECUTOR": "task_ferry.executors.immediate.ImmediateExecutor", "PROGRESS_STORE": "cache"},
        {
            "EXECUTOR": {"BACKEND": f"{HERE}.WorkerExecutor", "OPTIONS": {}},
            "PROGRESS_STORE": {"BACKEND": "database", "OPTIONS": {"DATABASE": "default"}},
            "PROGRESS_FLUSH_INTERVAL": 0.5,
            "PROGRESS_CACHE_TIMEOUT": 600,
            "JOB_EXPIRY_DAYS": 0,
            "MAX_JOBS_PER_USER_PER_TYPE": 1,
            "DEFAULT_QUEUE": "jobs",
        },
        # Every key of the 0.1.1 README's settings table.
        {
            "EXECUTOR": "task_ferry.executors.immediate.ImmediateExecutor",
            "CELERY_QUEUE": "default",
            "PROGRESS_CACHE_TIMEOUT": 3600,
            "JOB_EXPIRY_DAYS": 7,
            "MAX_JOBS_PER_USER_PER_TYPE": 5,
        },
    ],
    ids=["defaults", "names", "legacy-path-and-cache", "everything", "0.1.1-readme"],
)
def test_clean_config_gives_no_task_ferry_messages(config):
    assert _checks(config) == []
    with override_settings(TASK_FERRY=config):
        assert [m for m in run_checks() if m.id and m.id.startswith("task_ferry")] == []


def test_checks_run_through_django():
    """The check is registered: ``run_checks`` reports a misconfiguration."""
    with override_settings(TASK_FERRY={"PROGRESS_FLUSH_INTERVAL": -1}):
        assert "task_ferry.E004" in {m.id for m in run_checks()}


# ── Each check id ──────────────────────────────────────────────────────────────


def test_e001_settings_not_a_dict():
    error = _only(_checks("celery"), "task_ferry.E001")
    assert "must be a dict" in error.msg and '{"EXECUTOR": "celery"}' in error.hint


@pytest.mark.parametrize("value", ["celery", "task_ferry.executors.celery.CeleryExecutor"], ids=["name", "0.1.1-path"])
def test_e002_missing_executor_plugin_names_the_pip_install(uninstall, value):
    uninstall(EXECUTORS, "celery")
    error = _only(_checks({"EXECUTOR": value}), "task_ferry.E002")
    assert isinstance(error, Error)
    assert "'celery'" in error.msg and "immediate" in error.msg  # what is installed
    assert error.hint == "pip install task-ferry-celery"


def test_e002_unknown_name_and_bad_dotted_path():
    error = _only(_checks({"EXECUTOR": "kubernetes"}), "task_ferry.E002")
    assert "Unknown executor 'kubernetes'" in error.msg and "dotted path" in error.hint
    error = _only(_checks({"EXECUTOR": "myproject.executors.Missing"}), "task_ferry.E002")
    assert "Could not import the executor 'myproject.executors.Missing'" in error.msg


def test_e003_missing_store_plugin(uninstall):
    uninstall(PROGRESS_STORES, "redis")
    error = _only(_checks({"PROGRESS_STORE": "redis"}), "task_ferry.E003")
    assert error.hint == "pip install task-ferry-redis"


def test_e003_unknown_store():
    error = _only(_checks({"PROGRESS_STORE": "memcached"}), "task_ferry.E003")
    assert "Unknown progress store 'memcached'" in error.msg and "cache, database" in error.msg


@pytest.mark.parametrize("value", [0, -1, "fast", True, None, [0.25]])
def test_e004_bad_flush_interval(value):
    error = _only(_checks({"PROGRESS_FLUSH_INTERVAL": value}), "task_ferry.E004")
    assert 'TASK_FERRY["PROGRESS_FLUSH_INTERVAL"] must be a positive number' in error.msg
    assert "remove it to use the default" in error.hint


@pytest.mark.parametrize(
    "config,needle",
    [
        ({"PROGRESS_CACHE_TIMEOUT": 1, "PROGRESS_FLUSH_INTERVAL": 2}, "must be longer than PROGRESS_FLUSH_INTERVAL"),
        ({"PROGRESS_CACHE_TIMEOUT": 1.5}, "PROGRESS_CACHE_TIMEOUT"),
        ({"JOB_EXPIRY_DAYS": -1}, "JOB_EXPIRY_DAYS"),
        ({"MAX_JOBS_PER_USER_PER_TYPE": 0}, "MAX_JOBS_PER_USER_PER_TYPE"),
        ({"DEFAULT_QUEUE": ""}, "DEFAULT_QUEUE"),
        ({"EXECUTOR": {"BACKEND": ""}}, '"BACKEND" string'),
        ({"EXECUTOR": {"BACKEND": "immediate", "OPTIONS": ["x"]}}, '"OPTIONS"] must be a dict'),
        ({"PROGRESS_STORE": {"BACKEND": "cache", "TIMEOUT": 5}}, "unknown keys ['TIMEOUT']"),
        ({"EXECUTOR": 42}, "must be a name or dotted path string"),
    ],
)
def test_e004_other_bad_values(config, needle):
    error = _only(_checks(config), "task_ferry.E004")
    assert needle in error.msg


def test_e005_options_rejected_by_the_plugin():
    error = _only(_checks({"EXECUTOR": {"BACKEND": "immediate", "OPTIONS": {"EAGER": True}}}), "task_ferry.E005")
    assert "'immediate'" in error.msg and "EAGER" in error.msg and "RAISE_EXCEPTIONS" in error.msg


def test_w001_unknown_key_suggests_the_close_match():
    warning = _only(_checks({"PROGRESS_FLUSH_INTERVALL": 0.1}), "task_ferry.W001")
    assert isinstance(warning, Warning)
    assert "'PROGRESS_FLUSH_INTERVALL'" in warning.msg
    assert warning.hint == "Did you mean 'PROGRESS_FLUSH_INTERVAL'?"
    warning = _only(_checks({"BROKER": "amqp://"}), "task_ferry.W001")
    assert warning.hint.startswith("Remove it")


def test_w004_process_local_cache_with_an_out_of_process_executor(tmp_path):
    """LocMemCache lives in one process; a worker elsewhere never sees its
    snapshots or cancel flags."""
    config = {"EXECUTOR": f"{HERE}.WorkerExecutor", "PROGRESS_STORE": "cache"}
    warning = _only(_checks(config), "task_ferry.W004")
    assert "LocMemCache" in warning.msg and "WorkerExecutor" in warning.msg
    assert '"database"' in warning.hint and "Redis" in warning.hint
    # Inline jobs share the process; a file cache is shared by processes: no warning.
    assert _checks({"EXECUTOR": "immediate", "PROGRESS_STORE": "cache"}) == []
    shared = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(tmp_path)}}
    assert _checks(config, CACHES=shared) == []


def test_e007_cache_store_on_a_cache_alias_that_does_not_exist():
    error = _only(
        _checks({"PROGRESS_STORE": {"BACKEND": "cache", "OPTIONS": {"CACHE_ALIAS": "progress"}}}), "task_ferry.E007"
    )
    assert "CACHES['progress']" in error.msg and "CACHE_ALIAS" in error.hint


def test_e008_cache_store_on_dummy_cache():
    caches = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "progress": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"},
    }
    config = {"PROGRESS_STORE": {"BACKEND": "cache", "OPTIONS": {"CACHE_ALIAS": "progress"}}}
    error = _only(_checks(config, CACHES=caches), "task_ferry.E008")
    assert "DummyCache" in error.msg and '"database"' in error.hint


def test_e009_database_store_on_an_unknown_alias():
    error = _only(
        _checks({"PROGRESS_STORE": {"BACKEND": "database", "OPTIONS": {"DATABASE": "progress"}}}), "task_ferry.E009"
    )
    assert "DATABASES['progress']" in error.msg


def test_e010_plugin_built_for_another_protocol_version():
    error = _only(_checks({"EXECUTOR": f"{HERE}.FutureExecutor"}), "task_ferry.E010")
    assert f"plugin protocol {PROTOCOL_VERSION + 1}" in error.msg
    assert f"speaks protocol {PROTOCOL_VERSION}" in error.msg
    assert "CHANGELOG" in error.hint


def test_e011_plugin_missing_part_of_its_protocol():
    error = _only(_checks({"PROGRESS_STORE": f"{HERE}.WriteOnlyStore"}), "task_ferry.E011")
    for missing in ("read_many()", "request_cancel()", "clear()", "subscribe()"):
        assert missing in error.msg
    assert "write()" not in error.msg
    error = _only(_checks({"EXECUTOR": f"{HERE}.FlaglessExecutor"}), "task_ferry.E011")
    for missing in ("supports_defer_on_commit", "out_of_process", "revoke()", "kill()"):
        assert missing in error.msg
    assert "task_ferry.testing" in error.hint


def test_plugin_check_messages_are_reported_and_a_crashing_check_is_an_error():
    assert [m.id for m in _checks({"EXECUTOR": f"{HERE}.ChattyExecutor"})] == ["myplugin.W001"]
    error = _only(_checks({"EXECUTOR": f"{HERE}.CrashingCheckExecutor"}), "task_ferry.E011")
    assert "check() raised RuntimeError: check exploded" in error.msg


# ── Settings ───────────────────────────────────────────────────────────────────


def test_defaults_and_unknown_key():
    with override_settings(TASK_FERRY={}):
        assert get_setting("JOB_EXPIRY_DAYS") == 7
        assert get_setting("MAX_JOBS_PER_USER_PER_TYPE") == 5
        assert flush_interval() == 0.25
        assert isinstance(get_executor(), ImmediateExecutor)
        assert isinstance(get_progress_store(), DatabaseProgressStore)
        with pytest.raises(KeyError, match=r"known settings: .*DEFAULT_QUEUE"):
            get_setting("DEFAULT_QEUE")


def test_legacy_celery_queue_key_is_the_default_queue(db):
    with override_settings(TASK_FERRY={"CELERY_QUEUE": "legacy"}):
        assert get_setting("DEFAULT_QUEUE") == get_setting("CELERY_QUEUE") == "legacy"
        assert JobHandler.create_and_start(None, "scripted", steps=1).queue == "legacy"
        assert JobHandler.create_and_start(None, "export_table", table_id=1).queue == "exports"  # the type's own
    with override_settings(TASK_FERRY={"CELERY_QUEUE": "legacy", "DEFAULT_QUEUE": "current"}):
        assert get_setting("DEFAULT_QUEUE") == get_setting("CELERY_QUEUE") == "current"


def test_legacy_dotted_executor_paths_resolve():
    with override_settings(TASK_FERRY={"EXECUTOR": "task_ferry.executors.immediate.ImmediateExecutor"}):
        assert type(get_executor()) is ImmediateExecutor


def test_legacy_dotted_paths_of_missing_plugins_name_the_distribution(uninstall):
    """The 0.1.1 paths of the plugin executors resolve through their entry points;
    without the plugin, settings and imports alike name the ``pip install``."""
    uninstall(EXECUTORS, "celery")
    uninstall(EXECUTORS, "django_tasks")
    legacy = {"EXECUTOR": "task_ferry.executors.celery.CeleryExecutor"}
    with override_settings(TASK_FERRY=legacy), pytest.raises(ExecutorNotConfigured, match="task-ferry-celery"):
        get_executor()
    with pytest.raises(ImportError, match="pip install task-ferry-celery"):
        from task_ferry.executors.celery import CeleryExecutor  # noqa: F401
    with pytest.raises(ImportError, match="pip install task-ferry-django-tasks"):
        from task_ferry.executors.django_tasks import DjangoTasksExecutor  # noqa: F401


def test_override_settings_takes_effect_at_once(tmp_path):
    """Built plugin instances are dropped when ``TASK_FERRY`` (or ``CACHES``) changes."""
    before = get_executor()
    assert get_executor() is before  # built once per settings value
    with override_settings(TASK_FERRY={"EXECUTOR": f"{HERE}.WorkerExecutor", "PROGRESS_STORE": "cache"}):
        assert type(get_executor()) is WorkerExecutor
        store = get_progress_store()
        assert type(store) is CacheProgressStore and store.supports_cross_process is False
        shared = {
            "default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(tmp_path)}
        }
        with override_settings(CACHES=shared):
            assert get_progress_store().supports_cross_process is True
    with override_settings(TASK_FERRY={"PROGRESS_FLUSH_INTERVAL": 0.01, "PROGRESS_CACHE_TIMEOUT": 99}):
        assert flush_interval() == 0.01
    with override_settings(TASK_FERRY={"PROGRESS_STORE": "cache", "PROGRESS_CACHE_TIMEOUT": 99}):
        assert get_progress_store().timeout == 99  # the store's TIMEOUT defaults to the setting
    assert type(get_executor()) is type(before) and get_executor() is not before


def test_plugin_options_reach_the_constructor(db):
    """``{"BACKEND": ..., "OPTIONS": {...}}``: the immediate executor's
    ``RAISE_EXCEPTIONS = False`` records a failing job without raising."""
    config = {"EXECUTOR": {"BACKEND": "immediate", "OPTIONS": {"RAISE_EXCEPTIONS": False}}}
    with override_settings(TASK_FERRY=config):
        job = JobHandler.create_and_start(None, "scripted", steps=1, fail_with="quietly")
    job.refresh_from_db()
    assert (job.state, job.error) == ("failed", "quietly")
    bad = {"PROGRESS_STORE": {"BACKEND": "database", "OPTIONS": {"COLOUR": 1}}}
    with override_settings(TASK_FERRY=bad), pytest.raises(ProgressStoreNotConfigured, match="COLOUR"):
        get_progress_store()
