"""Recovery of jobs RQ took but never ran: ``manage.py ferry_rq_recover``.

RQ delivers at most once. A worker (or its work horse) that dies after taking a
job from its queue and before core's runner claimed it leaves the job
``pending`` in the database with no RQ job left to run it: RQ files its RQ job
as failed (at once when the horse dies under a living worker; at the next
maintenance of another worker, up to RQ's ``maintenance_interval``, 10 minutes
by default, when the whole worker dies). Core's reaper cannot see this: it
watches heartbeats of ``started`` jobs, and a ``pending`` job may rightly wait
hours in a long queue. Only RQ knows whether the job is still coming.

:func:`recover_pending` asks it. A job is dispatched again when all of these hold:

* it is ``pending`` (never claimed: the runner's claim moves it to ``started``
  in the same statement that counts the attempt), with an engine id;
* it has not changed for ``older_than`` seconds (default ``HEARTBEAT_TIMEOUT``
  and at least 60 s): a job just created or just re-dispatched is between its
  commit and its ``submit``;
* its RQ job (id = ``executor_task_id``) is **failed** or **stopped** (taken and
  never finished), or **gone** (RQ drops a job only once it finished, and a
  finished RQ job would have claimed the job; so gone means the queue itself was
  lost: a Redis restarted without persistence, a flushed database).

A queued, scheduled, deferred or started RQ job is left alone, as is a
cancelled one (core's cancel revokes it; the job row is not ``pending`` then).

Why this is safe: the re-dispatch first swaps the job's ``executor_task_id``
with a compare-and-set guarded by ``state = 'pending'`` and the old id, so of
several recoverers running at once one re-dispatches; and every delivery goes
through core's claim, a compare-and-set from ``pending``, so even a delivery of
the old RQ job that was somehow still on its way would find the job claimed
and skip it. A body never runs twice.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.utils import timezone
from rq.job import Job as RQJob
from rq.job import JobStatus

from task_ferry.conf import get_executor, heartbeat_timeout
from task_ferry.models import Job
from task_ferry.protocols import Dispatch
from task_ferry.states import JOB_PENDING

from .executor import RQExecutor

logger = logging.getLogger("task_ferry_rq.recovery")

#: RQ statuses of a job a worker took and will never finish.
ENDED_UNRUN = frozenset({JobStatus.FAILED, JobStatus.STOPPED})
#: The least ``older_than`` by default, in seconds.
MIN_AGE = 60.0


@dataclass
class RecoverResult:
    #: Job ids dispatched again, with the reason (``failed``, ``stopped``, ``gone``).
    redispatched: dict[int, str] = field(default_factory=dict)
    #: Pending jobs looked at (old enough).
    checked: int = 0


def default_age() -> float:
    return max(MIN_AGE, float(heartbeat_timeout()))


def recover_pending(
    executor: RQExecutor | None = None, older_than: float | None = None, limit: int = 500
) -> RecoverResult:
    """One pass (see the module docstring). ``executor``: default the configured one."""
    executor = executor or get_executor()
    if not isinstance(executor, RQExecutor):
        raise TypeError(f'recover_pending needs the rq executor; TASK_FERRY["EXECUTOR"] is {type(executor).__name__}.')
    age = default_age() if older_than is None else float(older_than)
    cutoff = timezone.now() - timedelta(seconds=age)
    rows = list(
        Job._base_manager.filter(state=JOB_PENDING, updated_at__lt=cutoff)
        .exclude(executor_task_id="")
        .order_by("pk")
        .values_list("pk", "executor_task_id", "type", "queue", "priority", "run_after")[:limit]
    )
    result = RecoverResult(checked=len(rows))
    if not rows:
        return result
    rq_jobs = RQJob.fetch_many([row[1] for row in rows], connection=executor.connection)
    for (pk, task_id, job_type, queue, priority, run_after), rq_job in zip(rows, rq_jobs, strict=True):
        if rq_job is None:
            reason = "gone"
        else:
            status = rq_job.get_status(refresh=False)
            if status not in ENDED_UNRUN:
                continue
            reason = str(getattr(status, "value", status))
        new_id = uuid.uuid4().hex
        swapped = Job._base_manager.filter(pk=pk, state=JOB_PENDING, executor_task_id=task_id).update(
            executor_task_id=new_id, updated_at=timezone.now()
        )
        if not swapped:
            continue  # claimed, cancelled or recovered by someone else meanwhile
        try:
            executor.submit(Dispatch(pk, new_id, job_type, queue, priority, run_after))
        except Exception as exc:
            # Left pending with an id RQ does not know: the next pass finds it gone and tries again.
            logger.warning("task-ferry-rq: could not re-dispatch job %s (%s); the next pass retries.", pk, exc)
            continue
        logger.warning(
            "task-ferry-rq: job %s was pending but its RQ job %s is %s (a worker took it and died before "
            "running it, or the queue was lost); dispatched again as %s.",
            pk,
            task_id,
            reason,
            new_id,
        )
        result.redispatched[pk] = reason
    return result


def recover_forever(every: float, older_than: float | None = None, on_pass=None) -> None:
    """:func:`recover_pending` every ``every`` seconds until interrupted (``ferry_rq_recover --every``)."""
    from django.db import close_old_connections

    while True:
        started = time.monotonic()
        try:
            outcome = recover_pending(older_than=older_than)
        except Exception:
            logger.exception("task-ferry-rq: a recovery pass failed; trying again in %ss.", every)
            close_old_connections()
        else:
            if on_pass is not None:
                on_pass(outcome)
        time.sleep(max(0.0, every - (time.monotonic() - started)))
