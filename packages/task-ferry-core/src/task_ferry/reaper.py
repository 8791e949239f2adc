"""The reaper: nothing stays ``started`` forever, and no retry is forgotten.

One pass (:func:`reap`, ``JobHandler.reap()``, ``manage.py ferry reap``):

1. **Lost workers.** A ``started`` job whose heartbeat is older than
   ``HEARTBEAT_TIMEOUT`` (its worker was killed, lost power, or hangs without
   its heartbeat thread) ends as ``failed`` with ``error_code = "worker_lost"``
   and the error "worker lost", or moves on to its next attempt when its retry
   policy allows one (``WorkerLost`` is what ``retry_on`` is matched against).
2. **Timeouts no one stopped.** A ``started`` job running longer than its
   timeout plus ``TIMEOUT_GRACE`` (a body that never reached a progress flush)
   ends as ``failed`` with ``error_code = "timeout"`` (or is retried), and its
   attempt is killed through the executor's ``kill`` where the executor
   ``supports_kill``. Without it the body keeps running until it returns (its
   late outcome is then dropped): use ``isolation = "process"`` for bodies
   that must be stopped. Isolated jobs are stopped by their own runner; the
   reaper only steps in if that runner is stuck as well.
3. **Due retries.** A ``retrying`` job whose ``run_after`` has passed is
   dispatched, for executors without ``supports_delay`` (the engine cannot
   wait, so nobody else will), and as a safety net for the others once it is
   ``HEARTBEAT_TIMEOUT`` overdue (a delayed delivery the engine lost).
4. **Deliveries the engine lost.** Where the executor has a ``recover(limit)``
   method (an optional part of the executor protocol: ``rq`` has one), the pass
   calls it: it dispatches again the ``pending`` jobs whose engine task ended
   without running them (a worker took the job and died before the claim) and
   returns their ids. Every delivery still goes through the runner's claim, so
   no body runs twice.

Safe to run from cron, from any engine's periodic mechanism (Celery beat, a
django-tasks schedule, a systemd timer) and with several instances at once:
every change is one compare-and-set ``UPDATE`` guarded by what the reaper
read (``state = 'started' AND attempts = n AND heartbeat_at < cutoff``;
``state = 'retrying'`` moved to ``pending`` before a dispatch), so two reapers
never both act on a job, and a worker that beats between the read and the
update keeps its job. The hooks (``on_error``, ``on_retry``, ``after_run``)
and signals of a job the reaper ends run in the reaper's process.

Each pass handles at most ``limit`` jobs of each kind; run it every
``HEARTBEAT_TIMEOUT`` or more often (``ferry reap --every SECONDS`` loops).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from . import retry, signals
from .conf import get_executor, get_progress_store, heartbeat_interval, heartbeat_timeout, timeout_grace
from .exceptions import JobTimedOut, JobTypeNotRegistered, WorkerLost
from .health import store_health
from .models import Job
from .protocols import Snapshot
from .registry import JobType, job_type_registry
from .states import ERROR_TIMEOUT, ERROR_WORKER_LOST, JOB_FAILED, JOB_PENDING, JOB_RETRYING, JOB_STARTED

logger = logging.getLogger("task_ferry.reaper")

WORKER_LOST_ERROR = "worker lost"


@dataclass
class ReapResult:
    """What one pass did, by job id."""

    #: Started jobs whose heartbeat stopped: ended failed, or retried (also in ``retried``).
    lost: list[int] = field(default_factory=list)
    #: Started jobs past their timeout and grace: ended failed, or retried (also in ``retried``).
    timed_out: list[int] = field(default_factory=list)
    #: Of the above, those given another attempt.
    retried: list[int] = field(default_factory=list)
    #: Timed-out attempts the executor was asked to kill.
    killed: list[int] = field(default_factory=list)
    #: Due ``retrying`` jobs handed to the executor.
    dispatched: list[int] = field(default_factory=list)
    #: ``pending`` jobs the engine lost before their claim, dispatched again by the executor's ``recover``.
    recovered: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.lost or self.timed_out or self.dispatched or self.recovered)


def reap(now: datetime | None = None, limit: int = 500) -> ReapResult:
    """One reaper pass (see the module docstring). ``now`` is for tests."""
    now = now or timezone.now()
    result = ReapResult()
    _reap_lost(now, limit, result)
    _reap_timed_out(now, limit, result)
    _dispatch_due(now, limit, result)
    _recover_lost_deliveries(limit, result)
    return result


def reap_forever(every: float, on_pass=None) -> None:
    """Run :func:`reap` every ``every`` seconds until interrupted (``ferry reap --every``)."""
    from django.db import close_old_connections

    while True:
        started = time.monotonic()
        try:
            outcome = reap()
        except Exception:
            logger.exception("task-ferry: a reaper pass failed; trying again in %ss.", every)
            close_old_connections()
        else:
            if on_pass is not None:
                on_pass(outcome)
        time.sleep(max(0.0, every - (time.monotonic() - started)))


# ── 1. Lost workers ────────────────────────────────────────────────────────────


def _reap_lost(now: datetime, limit: int, result: ReapResult) -> None:
    cutoff = now - timedelta(seconds=heartbeat_timeout())
    # A row started by a worker older than heartbeats (0.1.1) has none: its last change stands in.
    stale = Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, updated_at__lt=cutoff)
    rows = list(
        Job._base_manager.filter(stale, state=JOB_STARTED).order_by("pk").values_list("pk", "attempts", "type")[:limit]
    )
    for pk, attempt, type_name in rows:
        exc = WorkerLost(WORKER_LOST_ERROR)
        moved = _end_attempt(pk, attempt, type_name, stale, exc, ERROR_WORKER_LOST, result)
        if moved:
            result.lost.append(pk)


# ── 2. Timeouts ────────────────────────────────────────────────────────────────


def _reap_timed_out(now: datetime, limit: int, result: ReapResult) -> None:
    typed = {t.type: t for t in job_type_registry.all() if t.timeout}
    rows = list(
        Job._base_manager.filter(state=JOB_STARTED, started_at__isnull=False)
        .filter(Q(timeout__isnull=False) | Q(type__in=list(typed)))
        .order_by("pk")
        .values_list("pk", "attempts", "type", "timeout", "started_at", "executor_task_id")[:limit]
    )
    if not rows:
        return
    grace = timeout_grace()
    executor = None
    for pk, attempt, type_name, own_timeout, started_at, task_id in rows:
        job_type = typed.get(type_name) or (
            job_type_registry.get(type_name) if type_name in job_type_registry else None
        )
        timeout = own_timeout if own_timeout is not None else getattr(job_type, "timeout", None)
        if not timeout:
            continue
        isolated = getattr(job_type, "isolation", None) == "process"
        # An isolated body is stopped by its own runner at timeout + grace; step in only if that runner is stuck too.
        margin = grace + (grace + heartbeat_interval() + heartbeat_timeout() if isolated else 0)
        if started_at + timedelta(seconds=timeout + margin) > now:
            continue
        exc = JobTimedOut(
            f"The job ran longer than its timeout of {timeout:g}s (ended by the reaper after a {grace:g}s grace)."
        )
        if not _end_attempt(pk, attempt, type_name, Q(started_at=started_at), exc, ERROR_TIMEOUT, result):
            continue
        result.timed_out.append(pk)
        executor = executor or get_executor()
        if getattr(executor, "supports_kill", False) and task_id:
            try:
                executor.kill(pk, task_id)
            except Exception as kill_exc:
                logger.warning("task-ferry: could not kill timed-out job %s: %s", pk, kill_exc)
            else:
                result.killed.append(pk)
        elif not isolated:
            logger.warning(
                "task-ferry: job %s ran past its timeout and is recorded failed, but %s cannot kill it "
                '(supports_kill is False): its body runs until it returns. Set isolation = "process" on %s '
                "to stop such bodies.",
                pk,
                type(executor).__name__,
                type(job_type).__name__ if job_type else "its job type",
            )


# ── Ending an attempt on behalf of its runner ──────────────────────────────────


def _end_attempt(
    pk: int, attempt: int, type_name: str, guard: Q, exc: Exception, code: str, result: ReapResult
) -> bool:
    """Fail (or retry) attempt ``attempt`` of job ``pk`` with one compare-and-set; then
    record the attempt, clear the store, run hooks and dispatch a retry. False if
    someone else got there first."""
    from .runner import load_job, record_attempt

    try:
        job = load_job(pk, type_name or None)
    except Job.DoesNotExist:
        return False
    job_type: JobType | None
    try:
        job_type = job_type_registry.get_by_model(job)
    except JobTypeNotRegistered:
        job_type = None
    job.attempts = attempt  # the policy reads the number of the attempt that ended

    plan = executor = None
    if job_type is not None:
        try:
            if job_type.should_retry(job, exc):
                executor = get_executor()
                plan = retry.plan(executor, max(0.0, float(job_type.retry_delay(job))), timezone.now())
        except Exception:
            logger.exception("task-ferry: the retry policy of job %s raised; the job fails.", pk)
            plan = None

    store = get_progress_store()
    last = _last_snapshot(store, pk)
    now = timezone.now()
    message = str(exc)
    fields: dict = {"updated_at": now}
    if last is not None:
        fields.update(progress_percentage=last.percentage, progress_state=(last.label or job.progress_state)[:255])
    if plan is not None:
        fields.update(state=plan.state, **retry.fields(plan, attempt, message, code))
    else:
        human = (
            "The worker running the job stopped responding; the job did not finish."
            if code == ERROR_WORKER_LOST
            else f"The job was stopped: {message}"
        )
        fields.update(state=JOB_FAILED, error=message, human_readable_error=human, error_code=code, finished_at=now)
    moved = Job._base_manager.filter(guard, pk=pk, state=JOB_STARTED, attempts=attempt).update(**fields)
    if not moved:
        return False
    for name, value in fields.items():
        setattr(job, name, value)
    logger.warning(
        "task-ferry: attempt %s of job %s (%s): %s; %s.",
        attempt,
        pk,
        job.type,
        message,
        f"attempt {attempt + 1} scheduled" if plan is not None else "the job failed",
    )
    try:
        record_attempt(job, attempt, JOB_FAILED, code, exc, traceback_text="")
    except Exception:
        logger.exception("task-ferry: could not record attempt %s of job %s.", attempt, pk)
    try:
        store.clear(pk, Snapshot(pk, job.state, job.progress_percentage, job.progress_state, time.time()))
    except Exception as store_exc:
        store_health.failed(store, store_exc)

    if job_type is not None:
        _hooks(job_type, job, exc, plan is not None)
    if plan is not None:
        result.retried.append(pk)
        if plan.how in (retry.SUBMIT, retry.INLINE):
            retry.submit(executor, job)
    return True


def _last_snapshot(store, pk: int) -> Snapshot | None:
    try:
        return store.read_many([pk]).get(pk)
    except Exception as exc:
        store_health.failed(store, exc)
        return None


def _hooks(job_type: JobType, job: Job, exc: Exception, retried: bool) -> None:
    from .runner import _safely

    if retried:
        _safely("on_retry", job, job_type.on_retry, job, exc)
        signals.send(signals.job_retried, job_type, job, exc=exc, automatic=True)
    else:
        _safely("on_error", job, job_type.on_error, job, exc)
        signals.send(signals.job_failed, job_type, job, exc=exc)
    _safely("after_run", job, job_type.after_run, job)


# ── 3. Due retries ─────────────────────────────────────────────────────────────


def _dispatch_due(now: datetime, limit: int, result: ReapResult) -> None:
    executor = get_executor()
    slack = heartbeat_timeout() if getattr(executor, "supports_delay", False) else 0.0
    cutoff = now - timedelta(seconds=slack)
    due = Q(run_after__isnull=True) | Q(run_after__lte=cutoff)
    rows = list(
        Job._base_manager.filter(due, state=JOB_RETRYING)
        .order_by("run_after", "pk")
        .values_list("pk", "attempts")[:limit]
    )
    for pk, attempt in rows:
        task_id = uuid.uuid4().hex
        # retrying -> pending before the dispatch: of several reapers, one dispatches.
        if not Job._base_manager.filter(due, pk=pk, state=JOB_RETRYING, attempts=attempt).update(
            state=JOB_PENDING, executor_task_id=task_id, updated_at=timezone.now()
        ):
            continue
        job = Job._base_manager.get(pk=pk)
        retry.submit(executor, job)
        result.dispatched.append(pk)


# ── 4. Deliveries the engine lost ─────────────────────────────────────────────


def _recover_lost_deliveries(limit: int, result: ReapResult) -> None:
    recover = getattr(get_executor(), "recover", None)
    if recover is None:
        return
    try:
        result.recovered.extend(recover(limit=limit))
    except Exception:
        # The other parts of the pass stand; the next pass tries again.
        logger.exception("task-ferry: the executor's recover() failed; trying again next pass.")
