"""Core runs its own conformance kit on its own plugins, exactly as a plugin would.

Plus ``SpawnExecutor``, a test-only engine (one child process per job) that
declares the out-of-process capabilities, so the kit's out-of-process tests are
proven sound here rather than first in a plugin; and the child-process helpers
the kit ships (:mod:`task_ferry.testing.subprocess`).
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from django.db import connection
from django.utils import timezone

from task_ferry import PROTOCOL_VERSION
from task_ferry.protocols import Dispatch
from task_ferry.testing.executor import ExecutorConformance
from task_ferry.testing.store import ProgressStoreConformance
from task_ferry.testing.subprocess import bootstrap_args, child_env, running

REDIS_URL = "redis://127.0.0.1:6379/15"


# ── Executors ──────────────────────────────────────────────────────────────────


class TestImmediateExecutor(ExecutorConformance):
    @pytest.fixture
    def executor_setting(self):
        return "immediate"

    @pytest.fixture
    def progress_store_setting(self):
        return "database"


class SpawnExecutor:
    """Runs each dispatch in a child process of its own (``run_job`` after waiting
    for ``run_after``); ``revoke`` and ``kill`` end that process. Test-only."""

    protocol_version = PROTOCOL_VERSION
    supports_defer_on_commit = True
    out_of_process = True
    supports_queues = False
    supports_priority = False
    supports_delay = True
    supports_revoke = True
    supports_kill = True

    CODE = "import sys, time; time.sleep(float(sys.argv[2])); from task_ferry.runner import run_job; run_job(int(sys.argv[1]))"

    def __init__(self, options: dict | None = None) -> None:
        self.children: dict[str, list[subprocess.Popen]] = {}

    def submit(self, dispatch: Dispatch) -> str | None:
        wait = (dispatch.run_after - timezone.now()).total_seconds() if dispatch.run_after else 0.0
        args = bootstrap_args("-c", self.CODE, str(dispatch.job_id), str(max(wait, 0.0)))
        self.children.setdefault(dispatch.task_id, []).append(subprocess.Popen(args, env=child_env()))
        return None

    def revoke(self, job_id: int, task_id: str) -> None:
        self.kill(job_id, task_id)

    def kill(self, job_id: int, task_id: str) -> None:
        for child in self.children.get(task_id, []):
            child.kill()
            child.wait()

    def check(self) -> list:
        return []

    def close(self) -> None:
        # Called when settings change (test teardown), before the test database is flushed.
        for children in self.children.values():
            for child in children:
                if child.poll() is None:
                    child.kill()
                child.wait()
        self.children.clear()


@pytest.mark.integration
@pytest.mark.slow
class TestSpawnExecutor(ExecutorConformance):
    @pytest.fixture
    def executor_setting(self):
        return f"{__name__}.SpawnExecutor"

    @pytest.fixture
    def progress_store_setting(self):
        return "database"

    @pytest.fixture
    def ferry_worker(self):
        return None  # the executor starts a process per job


# ── Progress stores ────────────────────────────────────────────────────────────


class TestDatabaseStore(ProgressStoreConformance):
    @pytest.fixture
    def progress_store_setting(self):
        return "database"


class TestCacheStoreOnLocMem(ProgressStoreConformance):
    """In-process only: supports_cross_process is False, so the cross-process tests skip by flag."""

    @pytest.fixture
    def progress_store_setting(self, settings):
        settings.CACHES = {
            **settings.CACHES,
            "ferry_locmem": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        }
        return {"BACKEND": "cache", "OPTIONS": {"CACHE_ALIAS": "ferry_locmem"}}


@pytest.mark.integration
class TestCacheStoreOnRedis(ProgressStoreConformance):
    @pytest.fixture
    def progress_store_setting(self, settings):
        import redis

        try:
            redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
        except redis.exceptions.ConnectionError as exc:
            pytest.fail(f"Redis at {REDIS_URL} is not reachable ({exc}); start it with `redis-server --port 6379`.")
        settings.CACHES = {
            **settings.CACHES,
            "ferry_redis": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": REDIS_URL,
                # Job ids restart at 1 in every test database: keep parallel runs apart.
                "KEY_PREFIX": f"ferry-core-test-{os.getpid()}",
            },
        }
        return {"BACKEND": "cache", "OPTIONS": {"CACHE_ALIAS": "ferry_redis"}}


# ── Child-process helpers ──────────────────────────────────────────────────────


@pytest.mark.integration
def test_child_sees_test_database_and_settings(ferry_python, settings):
    """A bootstrapped child uses the test database (not the settings module's) and this test's settings."""
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user("child-visible")
    settings.TASK_FERRY = {**settings.TASK_FERRY, "PROGRESS_FLUSH_INTERVAL": 0.125}
    out = ferry_python(
        "import json\n"
        "from django.conf import settings\n"
        "from django.contrib.auth import get_user_model\n"
        "from django.db import connection\n"
        "print(json.dumps([connection.settings_dict['NAME'], settings.TASK_FERRY,\n"
        "    list(get_user_model().objects.values_list('username', flat=True))]))"
    )
    name, task_ferry, users = json.loads(out)
    # The settings module names the test database after the process id: the child's would differ.
    assert name == connection.settings_dict["NAME"] == connection.settings_dict["TEST"]["NAME"]
    assert task_ferry["PROGRESS_FLUSH_INTERVAL"] == 0.125
    assert users == ["child-visible"]


@pytest.mark.integration
def test_bootstrap_runs_management_commands_and_modules(ferry_child_env):
    """``COMMAND args`` runs a manage.py command, ``-m MODULE args`` a module, both on the test database."""
    snippet = "from django.db import connection; print(connection.settings_dict['NAME'])"
    for args in (["shell", "-c", snippet], ["-m", "django", "shell", "-c", snippet]):
        done = subprocess.run(bootstrap_args(*args), env=ferry_child_env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        # Django >= 5.2 shell prints what it auto-imported first.
        assert done.stdout.strip().splitlines()[-1] == connection.settings_dict["NAME"]


@pytest.mark.integration
def test_running_stops_the_whole_process_group(ferry_child_env, tmp_path):
    """``running`` waits for readiness, and at exit stops the process and the children it forked."""
    pid_file = tmp_path / "grandchild.pid"
    code = (
        "import subprocess, sys, time\n"
        "grandchild = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(grandchild.pid))\n"
        "time.sleep(600)\n"
    )
    with running(bootstrap_args("-c", code), env=ferry_child_env, ready=pid_file.exists) as proc:
        grandchild = int(pid_file.read_text())
        os.kill(grandchild, 0)  # alive
        assert proc.poll() is None
    assert proc.poll() is not None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the grandchild outlived running()")


@pytest.mark.integration
def test_running_reports_a_process_that_dies_before_ready(ferry_child_env):
    dies = bootstrap_args("-c", "raise SystemExit(3)")
    with (
        pytest.raises(AssertionError, match="exited with 3 before it was ready"),
        running(dies, env=ferry_child_env, ready=lambda: False),
    ):
        pass
