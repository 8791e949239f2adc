"""task-ferry-core's conformance kit, run against a real ``rq worker`` (rq's own CLI,
``--with-scheduler``) on Redis.

One worker for the class (queues ``default`` and the kit's extra queue), started once
for all the kit's tests: starting a worker costs seconds. It gets the same
``TASK_FERRY`` the kit applies to every test."""

import pytest
from django.conf import settings
from ferry_rq_testproject.support import rq_worker

from task_ferry.testing.executor import ExecutorConformance
from task_ferry.testing.subprocess import child_env


@pytest.mark.integration
class TestRQExecutor(ExecutorConformance):
    delivery_grace = 1.5

    @pytest.fixture
    def executor_setting(self):
        return settings.TASK_FERRY["EXECUTOR"]

    @pytest.fixture(scope="class")
    @classmethod
    def ferry_worker(cls, redis_db9, django_db_setup):
        env = child_env(settings={"TASK_FERRY": settings.TASK_FERRY})
        with rq_worker(["default", cls.extra_queue], env=env, cli=True) as worker:
            yield worker
