"""The thread executor against task-ferry's conformance kit: the same standard
tests every bundled executor passes. Tests the executor declares no support for
(queues, priority, delay, revoke, kill, out-of-process visibility) are skipped
by its flags, never by hand."""

import pytest
from django.core.checks import run_checks

from task_ferry.testing.executor import ExecutorConformance


class TestThreadExecutor(ExecutorConformance):
    @pytest.fixture
    def executor_setting(self):
        # Installed (pip install -e examples/thread_executor), "thread" works too.
        return {"BACKEND": "ferry_thread_executor.ThreadExecutor", "OPTIONS": {"MAX_WORKERS": 2}}

    @pytest.fixture
    def progress_store_setting(self):
        return "database"


def test_bad_options_are_a_system_check_error(settings, db):
    # db: some of Django 6.1's checks query the database.
    settings.TASK_FERRY = {"EXECUTOR": {"BACKEND": "ferry_thread_executor.ThreadExecutor", "OPTIONS": {"WORKERS": 2}}}
    errors = [e for e in run_checks() if e.id == "task_ferry.E005"]
    assert len(errors) == 1
    assert "unknown OPTIONS ['WORKERS'] for the thread executor; it takes MAX_WORKERS" in errors[0].msg
