"""task-ferry-core's conformance kit, run against real ``dramatiq`` worker processes on
Redis and on RabbitMQ.

One worker per class (one process, ``worker_concurrency`` threads, queues ``DEFAULT_QUEUE``
and the kit's extra queue), started once for all the kit's tests of that broker: starting a
worker costs seconds. It gets the same ``TASK_FERRY`` the kit applies to every test.

RabbitMQ's broker is made with ``max_priority``, so ``supports_priority`` is True there and
the kit's priority test runs; its worker prefetches one message (``dramatiq_queue_prefetch=1``),
or a message it had already taken would run before a higher-priority one still in the queue.
The Redis broker keeps FIFO lists: ``supports_priority`` is False and the test is skipped."""

import pytest
from django.conf import settings
from ferry_dramatiq_testproject.support import DEFAULT_QUEUE, PREFIX, dramatiq_worker

from task_ferry.testing.executor import ExecutorConformance
from task_ferry.testing.subprocess import child_env


class _DramatiqConformance(ExecutorConformance):
    broker_fixture = ""
    delivery_grace = 1.5
    # The kit's default names are shared by every suite on the server; RabbitMQ queues are per run here.
    extra_queue = f"{PREFIX}_b"
    unserved_queue = f"{PREFIX}_unserved"

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
        env = child_env(
            settings={"TASK_FERRY": {**settings.TASK_FERRY, "EXECUTOR": broker_under_test.executor_setting()}}
        )
        queues = [DEFAULT_QUEUE, cls.extra_queue]
        with dramatiq_worker(queues=queues, threads=cls.worker_concurrency, prefetch=1, env=env) as worker:
            yield worker


@pytest.mark.integration
class TestDramatiqOnRedis(_DramatiqConformance):
    broker_fixture = "redis_broker"


@pytest.mark.integration
class TestDramatiqOnRabbitMQ(_DramatiqConformance):
    broker_fixture = "rabbitmq_broker"
