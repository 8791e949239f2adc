"""Scheduling the next attempt of a job whose attempt failed and whose policy allows another.

Used by the runner (an attempt that raised or timed out) and by the reaper (an
attempt whose worker died). Where the next attempt is dispatched from depends
on the executor:

===================================  ===========  ===================================================
executor                             job becomes  next attempt dispatched
===================================  ===========  ===================================================
``supports_delay``                   ``retrying`` at once, with ``run_after`` (the engine waits)
no delay, backoff 0, out of process  ``pending``  at once
no delay, backoff 0, in process      ``pending``  run at once, inline, after this attempt's hooks
                                                  (``immediate``)
no delay, backoff > 0                ``retrying`` by the reaper once ``run_after`` is due
                                                  (``manage.py ferry reap``); nothing sleeps in-process
===================================  ===========  ===================================================

A dispatch the engine refuses leaves the job ``retrying`` for the reaper, which
tries again at its next run: a retry is never left ``pending`` with no run
scheduled. Duplicate dispatches are harmless (the runner's claim is a
compare-and-set), but the reaper still moves a job ``retrying`` -> ``pending``
with a compare-and-set before it dispatches, so concurrent reapers dispatch it once.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import router, transaction
from django.utils import timezone

from .protocols import Dispatch
from .states import JOB_PENDING, JOB_RETRYING

logger = logging.getLogger("task_ferry.retry")

SUBMIT = "submit"
INLINE = "inline"
REAPER = "reaper"


@dataclass(frozen=True)
class Plan:
    #: ``retrying`` or ``pending``.
    state: str
    #: ``submit`` (hand to the executor now), ``inline`` (run now, in this process)
    #: or ``reaper`` (leave it to ``ferry reap``).
    how: str
    run_after: datetime | None


def plan(executor: Any, delay: float, now: datetime) -> Plan:
    if getattr(executor, "supports_delay", False):
        return Plan(JOB_RETRYING, SUBMIT, now + timedelta(seconds=delay))
    if delay <= 0:
        return Plan(JOB_PENDING, SUBMIT if getattr(executor, "out_of_process", True) else INLINE, None)
    return Plan(JOB_RETRYING, REAPER, now + timedelta(seconds=delay))


def fields(plan: Plan, attempt: int, message: str, code: str) -> dict:
    """The columns a retry writes (besides ``state``) in its compare-and-set."""
    when = f" at {plan.run_after.isoformat(timespec='seconds')}" if plan.run_after else ""
    return {
        "run_after": plan.run_after,
        "error": message,
        "human_readable_error": f"Attempt {attempt} failed ({message}); the job will be retried{when}.",
        "error_code": code,
        "finished_at": None,
        "heartbeat_at": None,
        # A fresh engine id: the failed attempt's task may still be known to the engine (revoke, kill).
        "executor_task_id": uuid.uuid4().hex,
    }


def submit(executor: Any, job: Any) -> None:
    """Hand the job's next attempt to the executor (after the surrounding transaction
    commits, for executors that defer). A refusal leaves the job ``retrying`` for the reaper.

    An in-process executor (``immediate``) is not called: the attempt runs here and
    now through the runner, whose outcome is recorded on the job (the executor would
    re-raise the job's exception into the reaper)."""
    from .models import Job

    if not getattr(executor, "out_of_process", True):
        from .runner import run_job

        run_job(job.pk, job.type or None)
        return

    dispatch = Dispatch(
        job_id=job.pk,
        task_id=job.executor_task_id,
        job_type=job.type,
        queue=job.queue,
        priority=job.priority,
        run_after=job.run_after if getattr(executor, "supports_delay", False) else None,
    )
    attempt = job.attempts

    def go() -> None:
        try:
            engine_id = executor.submit(dispatch)
        except Exception as exc:
            logger.warning(
                "task-ferry: could not dispatch the next attempt of job %s (%s); `manage.py ferry reap` will "
                "try again.",
                job.pk,
                exc,
            )
            Job._base_manager.filter(pk=job.pk, state=JOB_PENDING, attempts=attempt).update(
                state=JOB_RETRYING, run_after=timezone.now(), updated_at=timezone.now()
            )
            return
        if engine_id and engine_id != job.executor_task_id:
            Job._base_manager.filter(pk=job.pk, attempts=attempt, executor_task_id=job.executor_task_id).update(
                executor_task_id=str(engine_id)
            )

    if getattr(executor, "supports_defer_on_commit", False):
        transaction.on_commit(go, using=router.db_for_write(Job))
    else:
        go()
