"""The root tests' Celery app. Its broker is the failure tests' private Redis
(``FERRY_CHAOS_REDIS_URL``), the one they stop: a Redis outage then hits the
broker as well as the progress store.

Every delivery of ``task_ferry.run_job`` that a worker has finished is
recorded in the Redis list :data:`DONE_KEY` (the job id), so a test can wait
until both deliveries of a job delivered twice have been handled.
"""

import os

import redis
from celery import Celery
from celery.signals import task_postrun

from task_ferry_celery.tasks import TASK_NAME

URL = os.environ.get("FERRY_CHAOS_REDIS_URL", "redis://127.0.0.1:6379/13")
DONE_KEY = "ferry_chaos:done"

app = Celery("ferry_root", set_as_current=False)
app.conf.update(
    broker_url=URL,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    broker_connection_retry=True,
    broker_connection_max_retries=None,
    worker_hijack_root_logger=False,
    # Celery 6's default: a broker outage would cancel running acks_late tasks. Jobs keep running.
    worker_cancel_long_running_tasks_on_connection_loss=False,
)


def recorder() -> redis.Redis:
    return redis.Redis.from_url(URL, socket_timeout=2, socket_connect_timeout=2)


@task_postrun.connect
def _record_done(sender=None, args=None, **kwargs) -> None:
    if getattr(sender, "name", None) == TASK_NAME:
        try:
            recorder().rpush(DONE_KEY, str(args[0]))
        except redis.RedisError:
            pass  # the outage test stops Redis; nothing waits for these then


def done(job_id: int) -> int:
    """How many deliveries of the job a worker has finished."""
    return recorder().lrange(DONE_KEY, 0, -1).count(str(job_id).encode())
