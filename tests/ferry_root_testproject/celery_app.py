"""The root tests' Celery app. Its broker is the failure tests' private Redis
(``FERRY_CHAOS_REDIS_URL``), the one they stop: a Redis outage then hits the
broker as well as the progress store.

Every delivery of ``task_ferry.run_job`` that a worker has finished is
recorded (:mod:`ferry_root_testproject.deliveries`, list :data:`DONE_KEY`, the
job id), so a test can wait until both deliveries of a job delivered twice
have been handled.
"""

from celery import Celery
from celery.signals import task_postrun

from task_ferry_celery.tasks import TASK_NAME

from . import deliveries

URL = deliveries.url(0)
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


@task_postrun.connect
def _record_done(sender=None, args=None, **kwargs) -> None:
    if getattr(sender, "name", None) == TASK_NAME:
        deliveries.record(DONE_KEY, args[0])


def done(job_id: int) -> int:
    """How many deliveries of the job a worker has finished."""
    return deliveries.count(DONE_KEY, job_id)
