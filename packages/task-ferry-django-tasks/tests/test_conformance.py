"""The conformance kit, once per kind of task backend: the immediate backend (jobs run inline,
in the caller) and django-tasks-db's ``DatabaseBackend`` with a real ``db_worker`` process."""

from __future__ import annotations

import pytest
from ferry_dt_testproject.workers import db_worker

from task_ferry.testing.executor import ExecutorConformance


class TestImmediateTaskBackend(ExecutorConformance):
    @pytest.fixture
    def executor_setting(self):
        return {"BACKEND": "django_tasks", "OPTIONS": {"BACKEND_ALIAS": "immediate"}}

    @pytest.fixture
    def progress_store_setting(self):
        return "database"


@pytest.mark.integration
@pytest.mark.slow
class TestDatabaseTaskBackend(ExecutorConformance):
    worker_concurrency = 1

    @pytest.fixture
    def executor_setting(self):
        return {"BACKEND": "django_tasks", "OPTIONS": {"BACKEND_ALIAS": "default"}}

    @pytest.fixture
    def progress_store_setting(self):
        return "database"

    @pytest.fixture
    def ferry_worker(self):
        with db_worker("default", self.extra_queue) as worker:
            yield worker
