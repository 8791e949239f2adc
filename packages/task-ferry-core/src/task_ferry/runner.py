"""The runner: the one code path every executor calls to run a job.

An engine's task body is ``run_job(job_id)``: claim the job with a
compare-and-set (a duplicate delivery finds it claimed and does nothing), run
the type's ``run`` with a :class:`~task_ferry.progress.Progress` wired to the
progress store, record the outcome with another compare-and-set, call hooks
and signals, and clear the store entry.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import F
from django.utils import timezone

from . import signals
from .conf import flush_interval, get_progress_store
from .exceptions import JobCancelled
from .models import Job
from .progress import Progress
from .protocols import Snapshot
from .registry import job_type_registry
from .states import JOB_CANCELLED, JOB_FAILED, JOB_FINISHED, JOB_PENDING, JOB_STARTED

logger = logging.getLogger("task_ferry.runner")

#: Outcome of ``run_job`` for a job some other delivery already claimed, or
#: that was cancelled before it started.
SKIPPED = "skipped"


@dataclass
class RunResult:
    job_id: int
    #: ``finished``, ``failed``, ``cancelled`` or ``skipped``.
    outcome: str
    value: object = None
    exception: BaseException | None = None
    store_writes: int = 0


class _StoreHealth:
    """Logs a store outage once, not once per flush, and its end once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down: set[str] = set()

    def failed(self, store: object, exc: BaseException) -> None:
        name = type(store).__name__
        with self._lock:
            if name in self._down:
                return
            self._down.add(name)
        logger.warning(
            "task-ferry: progress store %s is unreachable (%s: %s); jobs keep running and "
            "progress will show again when it returns.",
            name,
            type(exc).__name__,
            exc,
        )

    def ok(self, store: object) -> None:
        name = type(store).__name__
        if name in self._down:
            with self._lock:
                self._down.discard(name)
            logger.warning("task-ferry: progress store %s is reachable again.", name)


store_health = _StoreHealth()


class _Flusher:
    """Called by the root Progress at most once per interval."""

    __slots__ = ("job_id", "progress", "store", "store_down", "writes")

    def __init__(self, job_id: int, progress: Progress, store) -> None:
        self.job_id = job_id
        self.progress = progress
        self.store = store
        self.writes = 0
        self.store_down = False

    def __call__(self) -> None:
        p = self.progress
        snap = Snapshot(self.job_id, JOB_STARTED, p.percentage, p._label, time.time())
        try:
            cancel = self.store.write(snap)
            self.writes += 1
            if self.store_down:
                self.store_down = False
                store_health.ok(self.store)
        except Exception as exc:  # no store error may reach the job's run()
            self.store_down = True
            store_health.failed(self.store, exc)
            # The database row is authoritative for cancellation: check it while the store is away.
            cancel = Job._base_manager.filter(pk=self.job_id, state=JOB_CANCELLED).exists()
        p.flushed()
        if cancel:
            raise JobCancelled()


def _json_result(job: Job, value: object) -> object:
    if value is None:
        return None
    try:
        json.dumps(value, cls=DjangoJSONEncoder)
    except (TypeError, ValueError) as exc:
        logger.warning(
            "task-ferry: job %s (%s) returned a %s that is not JSON-serialisable (%s); result not stored.",
            job.pk,
            job.type,
            type(value).__name__,
            exc,
        )
        return None
    return value


def _safely(what: str, job: Job, fn, *args) -> None:
    try:
        fn(*args)
    except Exception:
        logger.exception(
            "task-ferry: %s raised for job %s (%s); the job's outcome is unchanged.", what, job.pk, job.type
        )


def load_job(job_id: int, job_type: str | None = None) -> Job:
    """The specific job row: one query when the type is known, two otherwise."""
    if job_type and job_type in job_type_registry:
        model = job_type_registry.get(job_type).model_class
        return model._base_manager.get(pk=job_id)
    return Job._base_manager.get(pk=job_id).specific


def run_job(job_id: int, job_type: str | None = None) -> RunResult:
    """Run one job by id. Safe to call twice with the same id, concurrently or not:
    only the call that claims the pending job runs it."""
    now = timezone.now()
    claimed = Job._base_manager.filter(pk=job_id, state=JOB_PENDING).update(
        state=JOB_STARTED, started_at=now, updated_at=now, attempts=F("attempts") + 1
    )
    if not claimed:
        logger.debug("task-ferry: job %s is not pending (duplicate delivery or cancelled); skipped.", job_id)
        return RunResult(job_id, SKIPPED)

    job = load_job(job_id, job_type)
    job_type_obj = job_type_registry.get_by_model(job)
    store = get_progress_store()
    progress = Progress(100)
    flusher = _Flusher(job_id, progress, store)
    progress.attach(flusher, flush_interval())
    signals.send(signals.job_started, job_type_obj, job)

    value = exc = None
    try:
        job_type_obj.before_run(job)
        value = job_type_obj.run(job, progress)
        outcome = JOB_FINISHED
    except JobCancelled:
        outcome = JOB_CANCELLED
    except Exception as e:  # the job's own failure: record it
        exc, outcome = e, JOB_FAILED

    intended = outcome
    outcome = _record(job, outcome, progress, _json_result(job, value) if outcome == JOB_FINISHED else None, exc)
    # Hooks belong to whoever recorded the end: this runner, or (for a cancel of a
    # started job) the canceller, who leaves the hooks to the runner.
    ours = outcome in (intended, JOB_CANCELLED)
    final = Snapshot(job_id, outcome, job.progress_percentage, job.progress_state, time.time())
    try:
        store.clear(job_id, final)
    except Exception as e:
        store_health.failed(store, e)

    if outcome == JOB_FINISHED and ours:
        signals.send(signals.job_finished, job_type_obj, job)
    elif outcome == JOB_FAILED and ours and exc is not None:
        logger.error("task-ferry: job %s (%s) failed", job.pk, job.type, exc_info=exc)
        _safely("on_error", job, job_type_obj.on_error, job, exc)
        signals.send(signals.job_failed, job_type_obj, job, exc=exc)
    elif outcome == JOB_CANCELLED:
        _safely("on_cancelled", job, job_type_obj.on_cancelled, job)
        signals.send(signals.job_cancelled, job_type_obj, job)
    _safely("after_run", job, job_type_obj.after_run, job)
    return RunResult(
        job_id,
        outcome,
        value if outcome == JOB_FINISHED else None,
        exc if outcome == JOB_FAILED else None,
        flusher.writes,
    )


def _record(job: Job, outcome: str, progress: Progress, result: object, exc: BaseException | None) -> str:
    """Write the outcome with a compare-and-set from ``started``; return the state that holds.

    If the CAS finds the job no longer started, someone else ended it first (a
    cancel accepted before the job finished): that state wins, and the job's
    last progress is kept on the row."""
    now = timezone.now()
    label = progress._label or job.progress_state
    fields: dict = {"finished_at": now, "updated_at": now, "progress_state": label[:255]}
    if outcome == JOB_FINISHED:
        fields.update(progress_percentage=100, result=result)
    else:
        fields["progress_percentage"] = progress.percentage
    if outcome == JOB_FAILED:
        message = str(exc) or type(exc).__name__
        fields.update(error=message, human_readable_error=f"An error occurred while running the job: {message}")
    if Job._base_manager.filter(pk=job.pk, state=JOB_STARTED).update(state=outcome, **fields):
        job.state = outcome
        for name, value in fields.items():
            setattr(job, name, value)
        return outcome
    # Lost the race: keep the state that won, record how far the job got.
    actual = Job._base_manager.filter(pk=job.pk).values_list("state", flat=True).first()
    if actual == JOB_CANCELLED:
        Job._base_manager.filter(pk=job.pk, state=JOB_CANCELLED).update(
            progress_percentage=progress.percentage, progress_state=label[:255]
        )
        job.progress_percentage, job.progress_state = progress.percentage, label
    else:
        logger.warning("task-ferry: job %s ended as %r by someone else while running; keeping that.", job.pk, actual)
    job.state = actual or job.state
    return job.state
