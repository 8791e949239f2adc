"""The root tests' Dramatiq brokers, as a project would define them.

``redis_broker``
    The failure tests' private Redis (``FERRY_CHAOS_REDIS_URL``), database 2: the
    outage test stops it under the workers.
``rabbitmq_broker``
    The shared RabbitMQ (``FERRY_CHAOS_AMQP_URL``, default vhost), with publish
    confirms. The tests send to a queue named for their run only
    (``ferry_chaos_<pid>``, deleted at the end), never to a shared one.

Both carry :class:`Done`, which records the message id of every message a worker
processed or skipped (:mod:`ferry_root_testproject.deliveries`, list :data:`DONE_KEY`).
"""

from __future__ import annotations

import os
from importlib.util import find_spec

from dramatiq import Middleware
from dramatiq.brokers.redis import RedisBroker

from . import deliveries

DONE_KEY = "ferry_chaos:dramatiq_done"
AMQP_URL = os.environ.get("FERRY_CHAOS_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


class Done(Middleware):
    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        deliveries.record(DONE_KEY, message.message_id)

    def after_skip_message(self, broker, message) -> None:
        deliveries.record(DONE_KEY, message.message_id)


def done(message_id: str) -> int:
    """How many deliveries of the message a worker has handled."""
    return deliveries.count(DONE_KEY, message_id)


redis_broker = RedisBroker(url=deliveries.url(2))
redis_broker.add_middleware(Done())

if find_spec("pika") is not None:
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    rabbitmq_broker = RabbitmqBroker(url=AMQP_URL, confirm_delivery=True)
    rabbitmq_broker.add_middleware(Done())
