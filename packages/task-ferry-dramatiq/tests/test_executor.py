"""The executor without a worker: OPTIONS, checks, capability flags, the actor's options, and the
message it puts on each real broker (read back from Redis and RabbitMQ, no worker consuming)."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import dramatiq
import pika
import pytest
import redis
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import OperationalError, transaction
from django.utils import timezone
from dramatiq import Message, Middleware
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from ferry_dramatiq_testproject.support import PREFIX

from task_ferry import PROTOCOL_VERSION
from task_ferry.conf import get_executor
from task_ferry.handler import JobHandler
from task_ferry.plugins import EXECUTORS
from task_ferry.protocols import Dispatch, Executor
from task_ferry.testing.models import ConformanceJob
from task_ferry_dramatiq.actor import ACTOR_NAME, DB_RETRIES, actor_options, declare_actor, retry_when, run_job
from task_ferry_dramatiq.executor import DramatiqExecutor, broker_priority, delay_ms

WIRE_QUEUE = f"{PREFIX}_wire"


def _dispatch(queue: str = WIRE_QUEUE, priority: int = 0, run_after=None, job_id: int = 1) -> Dispatch:
    return Dispatch(job_id, uuid.uuid4().hex, "ferry_conformance", queue, priority, run_after)


# ── Options, checks, flags ─────────────────────────────────────────────────────


def test_entry_point_and_protocol():
    cls = EXECUTORS.load("dramatiq")
    assert cls is DramatiqExecutor
    executor = cls({})
    assert isinstance(executor, Executor)
    assert executor.protocol_version == PROTOCOL_VERSION
    flags = {f: getattr(executor, f) for f in ("supports_defer_on_commit", "out_of_process", "supports_queues")}
    assert flags == dict.fromkeys(flags, True)
    assert (executor.supports_delay, executor.supports_revoke, executor.supports_kill) == (True, False, False)


def test_unknown_options_are_refused_naming_the_accepted_ones():
    with pytest.raises(ValueError, match=r"unknown OPTIONS \['URL'\].*takes BROKER"):
        DramatiqExecutor({"URL": "redis://"})


@pytest.mark.parametrize("value", [42, "", ["proj.dramatiq:broker"]])
def test_a_bad_broker_option_is_refused(value):
    with pytest.raises(ValueError, match="BROKER must be a dotted path"):
        DramatiqExecutor({"BROKER": value})


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("ferry_dramatiq_testproject.nowhere:broker", "ModuleNotFoundError"),
        ("ferry_dramatiq_testproject.brokers:nothing", "has no attribute 'nothing'"),
        ("ferry_dramatiq_testproject.brokers:DELIVERIES_KEY", "is a str, not a dramatiq.Broker"),
    ],
)
def test_check_reports_a_broker_that_cannot_be_loaded(path, error):
    [message] = DramatiqExecutor({"BROKER": path}).check()
    assert message.id == "task_ferry_dramatiq.E001"
    assert error in message.msg


@pytest.mark.parametrize(
    "path", ["ferry_dramatiq_testproject.brokers:redis_broker", "ferry_dramatiq_testproject.brokers.rabbitmq_broker"]
)
def test_check_accepts_both_dotted_forms(path):
    assert DramatiqExecutor({"BROKER": path}).check() == []


def test_check_never_connects():
    """Brokers pointed at closed ports: check() is silent and quick, because nothing connects."""
    for broker in (RedisBroker(url="redis://127.0.0.1:1/0"), RabbitmqBroker(url="amqp://guest:guest@127.0.0.1:1/")):
        started = time.monotonic()
        assert DramatiqExecutor({"BROKER": broker}).check() == []
        assert time.monotonic() - started < 1.0


def test_check_warns_when_the_global_broker_is_unset(monkeypatch):
    monkeypatch.setattr(dramatiq.broker, "global_broker", None)
    [message] = DramatiqExecutor({}).check()
    assert message.id == "task_ferry_dramatiq.W001"
    assert dramatiq.broker.global_broker is None, "check() must not create Dramatiq's default broker"
    monkeypatch.setattr(dramatiq.broker, "global_broker", StubBroker())
    assert DramatiqExecutor({}).check() == []


@pytest.mark.django_db  # Django 6.1's JSONField check asks SQLite whether it has JSON support
def test_django_check_passes_on_the_test_project():
    call_command("check", fail_level="WARNING")


def test_broker_unset_is_the_global_broker(monkeypatch):
    stub = StubBroker()
    monkeypatch.setattr(dramatiq.broker, "global_broker", stub)
    assert DramatiqExecutor({}).broker is stub


def test_supports_priority_only_on_rabbitmq_with_max_priority():
    url = django_settings.AMQP_BROKER_URL
    assert DramatiqExecutor({"BROKER": RedisBroker(url=django_settings.REDIS_BROKER_URL)}).supports_priority is False
    assert DramatiqExecutor({"BROKER": RabbitmqBroker(url=url)}).supports_priority is False
    assert DramatiqExecutor({"BROKER": RabbitmqBroker(url=url, max_priority=10)}).supports_priority is True


def test_priority_bands():
    levels = [broker_priority(p, 10) for p in range(-100, 101)]
    assert (levels[0], levels[100], levels[200]) == (0, 5, 10)
    assert levels == sorted(levels), "a higher core priority never maps to a lower broker priority"
    sizes = [levels.count(level) for level in range(11)]
    assert max(sizes) - min(sizes) <= 1, f"bands are equal to within one: {sizes}"
    assert (broker_priority(-500, 10), broker_priority(500, 10)) == (0, 10)
    assert {broker_priority(p, 1) for p in (-100, 0)} == {0} and broker_priority(1, 1) == 1


def test_delay_is_rounded_up_and_past_times_are_no_delay():
    now = timezone.now()
    assert delay_ms(None) is None
    assert delay_ms(now - timedelta(seconds=1)) is None
    assert 1_900 <= delay_ms(now + timedelta(seconds=2)) <= 2_001  # rounded up: never early
    assert delay_ms(now + timedelta(microseconds=1)) in (1, None)


# ── The actor ──────────────────────────────────────────────────────────────────


class AbortLike(Middleware):
    """Defines the actor option dramatiq-abort's ``Abortable`` middleware defines."""

    @property
    def actor_options(self):
        return {"abortable"}


def test_actor_options_follow_the_brokers_middleware():
    default = StubBroker()
    options = actor_options(default)
    assert options["time_limit"] == float("inf")
    assert "max_age" in options and options["max_age"] is None
    assert options["retry_when"] is retry_when
    assert "abortable" not in options
    assert actor_options(StubBroker(middleware=[])) == {}

    with_abort = StubBroker()
    with_abort.add_middleware(AbortLike())
    actor = declare_actor(with_abort)
    assert actor.options["abortable"] is False
    assert actor.actor_name == ACTOR_NAME
    assert actor.queue_name == django_settings.TASK_FERRY["DEFAULT_QUEUE"]
    assert declare_actor(with_abort) is actor, "declared once per broker"


def test_retry_only_for_database_errors_and_only_so_often():
    assert retry_when(0, OperationalError("server closed the connection"))
    assert not retry_when(DB_RETRIES, OperationalError("still down"))
    assert not retry_when(0, RuntimeError("the job's own error never reaches Dramatiq anyway"))


@pytest.mark.django_db(transaction=True)
def test_the_actor_body_records_the_jobs_error_and_returns():
    """In process: the body returns normally for a failing job, so Dramatiq sees success and never retries it."""
    from task_ferry.testing.base import create_pending_job

    job = create_pending_job(steps=1, fail_with="boom")
    assert run_job(job.pk, job.type) is None
    job.refresh_from_db()
    assert (job.state, job.error, job.body_runs) == ("failed", "boom", 1)


# ── On the wire ────────────────────────────────────────────────────────────────


def _redis_messages(queue: str) -> list[Message]:
    client = redis.Redis.from_url(django_settings.REDIS_BROKER_URL)
    return [Message.decode(data) for data in client.hvals(f"dramatiq:{queue}.msgs")]


def test_redis_message(redis_broker):
    executor = DramatiqExecutor({"BROKER": redis_broker.path})
    now, dispatch = timezone.now(), _dispatch(priority=100, job_id=7)
    assert executor.submit(dispatch) is None, "core's task id is the message id: nothing to record"
    [message] = _redis_messages(WIRE_QUEUE)
    assert (message.message_id, message.queue_name, message.actor_name) == (dispatch.task_id, WIRE_QUEUE, ACTOR_NAME)
    assert message.args == (7, "ferry_conformance")
    assert "broker_priority" not in message.options, "Redis has no message priorities"

    delayed = _dispatch(run_after=now + timedelta(seconds=30))
    executor.submit(delayed)
    [message] = _redis_messages(f"{WIRE_QUEUE}.DQ")
    assert message.message_id == delayed.task_id
    eta = message.options["eta"] / 1000
    assert delayed.run_after.timestamp() <= eta < delayed.run_after.timestamp() + 1.0


def test_rabbitmq_message_and_priority_order(rabbitmq_broker):
    """RabbitMQ delivers the higher priority first: three messages sent low to high come back high to low."""
    executor = DramatiqExecutor({"BROKER": rabbitmq_broker.path})
    sent = {p: _dispatch(priority=p) for p in (-100, 0, 100)}
    for dispatch in sent.values():
        executor.submit(dispatch)
    got = []
    with pika.BlockingConnection(pika.URLParameters(django_settings.AMQP_BROKER_URL)) as conn:
        channel = conn.channel()
        deadline = time.monotonic() + 10
        while len(got) < 3 and time.monotonic() < deadline:
            method, properties, body = channel.basic_get(WIRE_QUEUE, auto_ack=True)
            if method is not None:
                got.append((properties.priority, Message.decode(body)))
    assert [(prio, m.message_id) for prio, m in got] == [
        (10, sent[100].task_id),
        (5, sent[0].task_id),
        (0, sent[-100].task_id),
    ]
    assert all(m.queue_name == WIRE_QUEUE and m.actor_name == ACTOR_NAME for _, m in got)


@pytest.mark.django_db(transaction=True)
def test_a_queue_name_dramatiq_refuses_fails_the_job_at_dispatch(settings, redis_broker):
    settings.TASK_FERRY = {**settings.TASK_FERRY, "EXECUTOR": redis_broker.executor_setting()}
    with pytest.raises(ValueError, match="not a Dramatiq queue name"), transaction.atomic():
        JobHandler.create_and_start(None, "ferry_conformance", queue="no spaces allowed")
    job = ConformanceJob.objects.get()
    assert job.state == "failed"
    assert job.error.startswith("dispatch failed: ValueError")
    assert get_executor().broker is redis_broker.broker
