"""The test project's Dramatiq brokers, as a project would define them, plus a delivery log.

``redis_broker``
    Redis database 7 (``settings.REDIS_BROKER_URL``).
``rabbitmq_broker``
    RabbitMQ's default vhost, queues declared with ``x-max-priority`` 10, so
    priorities count. Its queue names never meet a broker without ``max_priority``
    (RabbitMQ refuses to redeclare a queue with other arguments).

Both carry :class:`DeliveryLog`, which records in Redis what the worker saw of
each message: the tests read it to check the engine's side (message id, queue,
whether Dramatiq saw an exception)."""

from __future__ import annotations

import json

import redis
from django.conf import settings
from dramatiq import Middleware
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker

DELIVERIES_KEY = f"{settings.QUEUE_PREFIX}:deliveries"


class DeliveryLog(Middleware):
    """Appends one JSON record per processed message to the Redis list :data:`DELIVERIES_KEY`."""

    def __init__(self) -> None:
        self._client = None

    def _record(self, message, outcome: str, exception: BaseException | None = None) -> None:
        if self._client is None:
            self._client = redis.Redis.from_url(settings.REDIS_BROKER_URL)
        record = {
            "message_id": message.message_id,
            "queue": message.queue_name,
            "actor": message.actor_name,
            "args": list(message.args),
            "outcome": outcome,
            "exception": repr(exception) if exception is not None else None,
            "retries": message.options.get("retries", 0),
        }
        self._client.rpush(DELIVERIES_KEY, json.dumps(record))

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        self._record(message, "processed", exception)

    def after_skip_message(self, broker, message) -> None:
        self._record(message, "skipped")


def deliveries() -> list[dict]:
    client = redis.Redis.from_url(settings.REDIS_BROKER_URL)
    return [json.loads(item) for item in client.lrange(DELIVERIES_KEY, 0, -1)]


redis_broker = RedisBroker(url=settings.REDIS_BROKER_URL)
redis_broker.add_middleware(DeliveryLog())

rabbitmq_broker = RabbitmqBroker(url=settings.AMQP_BROKER_URL, max_priority=10)
rabbitmq_broker.add_middleware(DeliveryLog())
