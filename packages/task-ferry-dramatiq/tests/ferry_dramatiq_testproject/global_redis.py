"""A project that configures Dramatiq the global way: ``dramatiq.set_broker(...)`` at import.

Used as the broker module of a worker (``dramatiq ferry_dramatiq_testproject.global_redis
task_ferry_dramatiq.worker``) with the executor's ``BROKER`` unset."""

import dramatiq

from .brokers import redis_broker

dramatiq.set_broker(redis_broker)
