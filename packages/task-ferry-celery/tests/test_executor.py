"""The executor's glue: OPTIONS, capability flags, the priority mapping, system checks,
and the exact message it hands the broker (read back from a real Redis and RabbitMQ,
with no worker running)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta

import pytest
from celery import Celery
from django.core.checks import Error, Warning
from django.core.management import call_command
from django.db import OperationalError
from django.test import override_settings
from django.utils import timezone

from task_ferry.conf import get_executor
from task_ferry.exceptions import ExecutorNotConfigured, Unsupported
from task_ferry.plugins import EXECUTORS
from task_ferry.protocols import Dispatch, Executor
from task_ferry_celery import tasks
from task_ferry_celery.executor import OPTIONS, CeleryExecutor, priority_level

# ── Discovery and OPTIONS ──────────────────────────────────────────────────────


def test_entry_point_and_legacy_path_resolve_to_the_executor():
    from task_ferry.executors.celery import CeleryExecutor as legacy

    assert EXECUTORS.load("celery") is CeleryExecutor
    assert EXECUTORS.load("task_ferry.executors.celery.CeleryExecutor") is CeleryExecutor
    assert legacy is CeleryExecutor
    assert isinstance(CeleryExecutor(), Executor)


def test_flags():
    executor = CeleryExecutor()
    assert executor.supports_defer_on_commit and executor.out_of_process
    assert executor.supports_queues and executor.supports_priority and executor.supports_delay
    assert executor.supports_revoke and executor.supports_kill


def test_unknown_options_are_refused_with_the_accepted_names():
    with pytest.raises(ValueError) as info:
        CeleryExecutor({"APP": "x.y", "BROKER": "redis://"})
    assert "['BROKER']" in str(info.value)
    for name in OPTIONS:
        assert name in str(info.value)


@pytest.mark.parametrize(
    "options", [{"KILL_GRACE": -1}, {"KILL_GRACE": "10"}, {"KILL_GRACE": True}, {"POOL": ""}, {"APP": 42}]
)
def test_bad_option_values_are_refused(options):
    with pytest.raises(ValueError):
        CeleryExecutor(options)


def test_bad_options_in_settings_fail_loudly(settings):
    settings.TASK_FERRY = {"EXECUTOR": {"BACKEND": "celery", "OPTIONS": {"QUEUE": "x"}}}
    with pytest.raises(ExecutorNotConfigured, match="unknown OPTIONS"):
        get_executor()


@pytest.mark.parametrize(
    ("pool", "killable"), [("prefork", True), ("solo", False), ("threads", False), ("gevent", False)]
)
def test_kill_is_declared_by_pool(pool, killable):
    executor = CeleryExecutor({"POOL": pool})
    assert executor.supports_kill is killable
    if not killable:
        with pytest.raises(Unsupported, match=pool):
            executor.kill(1, "some-task-id")


# ── Priority ───────────────────────────────────────────────────────────────────


def test_priority_levels_are_ordered_equal_bands():
    levels = [priority_level(p) for p in range(-100, 101)]
    assert levels == sorted(levels)
    assert (levels[0], levels[-1]) == (0, 9)
    sizes = [levels.count(level) for level in range(10)]
    assert min(sizes) >= 20 and max(sizes) <= 21, sizes
    # The bands the README documents.
    assert [priority_level(p) for p in (-100, -80, -79, -20, -19, 0, 1, 20, 21, 80, 81, 100)] == [
        0, 0, 1, 3, 4, 4, 5, 5, 6, 8, 9, 9
    ]  # fmt: skip


def test_priority_direction_follows_the_transport_without_connecting():
    # Port 1 has nothing listening: working out the transport must not connect.
    redis_app = Celery("t", broker="redis://127.0.0.1:1/0", set_as_current=False)
    amqp_app = Celery("t", broker="amqp://guest@127.0.0.1:1//", set_as_current=False)
    on_redis, on_amqp = CeleryExecutor({"APP": redis_app}), CeleryExecutor({"APP": amqp_app})
    for p in (-100, -50, 0, 50, 100):
        assert on_amqp.celery_priority(p) == priority_level(p)
        assert on_redis.celery_priority(p) == 9 - priority_level(p)
    assert on_redis.celery_priority(100) == 0 and on_amqp.celery_priority(100) == 9


# ── System checks ──────────────────────────────────────────────────────────────


def test_check_reports_an_app_that_cannot_be_imported():
    messages = CeleryExecutor({"APP": "no_such_module.celery:app"}).check()
    assert [m.id for m in messages] == ["task_ferry_celery.E001"]
    assert isinstance(messages[0], Error) and "no_such_module" in messages[0].msg


def test_check_reports_a_path_that_is_not_a_celery_app():
    messages = CeleryExecutor({"APP": "django.conf.settings"}).check()
    assert [m.id for m in messages] == ["task_ferry_celery.E001"]


def test_check_warns_about_an_app_without_broker():
    messages = CeleryExecutor({"APP": Celery("nobroker", set_as_current=False)}).check()
    assert [m.id for m in messages] == ["task_ferry_celery.W001"]
    assert isinstance(messages[0], Warning)


def test_check_passes_without_connecting():
    app = Celery("t", broker="redis://127.0.0.1:1/0", set_as_current=False)
    started = time.monotonic()
    assert CeleryExecutor({"APP": app}).check() == []
    assert time.monotonic() - started < 1.0


def test_check_warns_when_the_app_is_not_installed():
    app = Celery("t", broker="redis://127.0.0.1:1/0", set_as_current=False)
    installed = ["django.contrib.auth", "django.contrib.contenttypes", "task_ferry"]
    with override_settings(INSTALLED_APPS=installed):
        messages = CeleryExecutor({"APP": app}).check()
    assert [m.id for m in messages] == ["task_ferry_celery.W002"]


def test_manage_py_check_is_clean_with_the_test_settings(db):
    # ``db``: Django 6.1's model checks ask the database what it supports.
    call_command("check", fail_level="WARNING")


# ── The task's glue (eager, in process: no broker involved) ────────────────────


def test_task_retries_runner_database_errors(monkeypatch):
    """A database error of the runner's own (not the job's) is retried on a fresh connection;
    the runner's claim makes a retry safe."""
    calls: list[tuple] = []

    def flaky(job_id, job_type=None):
        calls.append((job_id, job_type))
        if len(calls) < 3:
            raise OperationalError("server closed the connection unexpectedly")

    closed: list[bool] = []
    monkeypatch.setattr("task_ferry.runner.run_job", flaky)
    monkeypatch.setattr(tasks, "close_old_connections", lambda: closed.append(True))
    result = tasks.run_job.apply(args=[7, "ferry_conformance"])
    assert result.successful(), result.traceback
    assert calls == [(7, "ferry_conformance")] * 3
    assert closed == [True, True], "a broken connection must be dropped before each retry"


# ── The message on a real broker (no worker) ───────────────────────────────────


def _get(broker, queue: str):
    with broker.app.connection_for_read() as conn:
        channel = conn.channel()
        try:
            return channel.basic_get(queue, no_ack=True)
        finally:
            channel.close()


@pytest.mark.integration
@pytest.mark.parametrize("name", ["redis", "rabbitmq"])
def test_the_message_sent(name, request):
    """One ``task_ferry.run_job`` message: core's task id as Celery's, args ``[job_id, job_type]``,
    the queue, the priority in the broker's order and ``run_after`` as the ETA. Sent before
    any worker exists, it waits in the broker (the queue is declared on publish)."""
    broker = request.getfixturevalue(f"{name}_broker")
    executor = CeleryExecutor({"APP": broker.app_path})
    run_after = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    dispatch = Dispatch(
        job_id=4242,
        task_id=uuid.uuid4().hex,
        job_type="ferry_conformance",
        queue="ferry_conformance_unserved",
        priority=50,
        run_after=run_after,
    )
    assert executor.submit(dispatch) is None
    message = _get(broker, "ferry_conformance_unserved")
    assert message is not None, "the message did not reach its queue"
    headers = message.headers
    assert headers["task"] == "task_ferry.run_job"
    assert headers["id"] == dispatch.task_id
    assert json.loads(message.body)[0] == [4242, "ferry_conformance"]
    assert headers["eta"] == run_after.isoformat()
    expected = {"redis": 9 - priority_level(50), "rabbitmq": priority_level(50)}[name]
    assert message.properties["priority"] == expected
    assert _get(broker, "ferry_conformance_unserved") is None  # exactly one message


@pytest.mark.integration
def test_no_queue_means_celerys_default_queue(redis_broker):
    executor = CeleryExecutor({"APP": redis_broker.app_path})
    dispatch = Dispatch(job_id=1, task_id=uuid.uuid4().hex, job_type="ferry_conformance", queue="")
    executor.submit(dispatch)
    default_queue = redis_broker.app.conf.task_default_queue
    message = _get(redis_broker, default_queue)
    assert message is not None and message.headers["id"] == dispatch.task_id
    assert message.headers["eta"] is None
