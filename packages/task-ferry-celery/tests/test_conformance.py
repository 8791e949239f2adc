"""task-ferry-core's conformance kit, run against real ``celery worker`` processes on
Redis and on RabbitMQ.

One worker per class (prefork, concurrency 1, queues ``default`` and the kit's extra
queue), started once for all the kit's tests of that broker: starting a worker costs
seconds. It gets the same ``TASK_FERRY`` the kit applies to every test."""

import pytest
from django.conf import settings
from ferry_celery_testproject.support import celery_worker

from task_ferry.testing.executor import ExecutorConformance
from task_ferry.testing.subprocess import child_env


class _CeleryConformance(ExecutorConformance):
    broker_fixture = ""
    delivery_grace = 1.5

    @pytest.fixture(scope="class")
    @classmethod
    def broker_under_test(cls, request):
        return request.getfixturevalue(cls.broker_fixture)

    @pytest.fixture
    def executor_setting(self, broker_under_test):
        return broker_under_test.executor_setting()

    @pytest.fixture(scope="class")
    @classmethod
    def ferry_worker(cls, broker_under_test, django_db_setup):
        ferry = {**settings.TASK_FERRY, "EXECUTOR": broker_under_test.executor_setting()}
        queues = ["default", cls.extra_queue]
        env = child_env(settings={"TASK_FERRY": ferry})
        with celery_worker(broker_under_test, queues, concurrency=cls.worker_concurrency, env=env) as worker:
            yield worker


@pytest.mark.integration
class TestCeleryOnRedis(_CeleryConformance):
    broker_fixture = "redis_broker"


@pytest.mark.integration
class TestCeleryOnRabbitMQ(_CeleryConformance):
    broker_fixture = "rabbitmq_broker"
