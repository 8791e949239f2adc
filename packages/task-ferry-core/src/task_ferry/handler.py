"""``JobHandler``: the one facade for creating, dispatching, cancelling, retrying
and cleaning up jobs (0.1.1 API plus ``create_many``, ``retry``, ``queue_depths``,
``reap`` and ``get_logs``)."""

from __future__ import annotations

import logging
import time
import uuid
import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.contrib.contenttypes.models import ContentType
from django.db import connections, router, transaction
from django.db.models import Count, Q
from django.db.models.signals import post_save, pre_save
from django.utils import timezone

from . import signals
from .conf import get_executor, get_progress_store, get_setting
from .exceptions import (
    JobDoesNotExist,
    JobNotCancellable,
    JobNotRetryable,
    JobTypeNotRegistered,
    MaxJobCountExceeded,
)
from .models import Job, ProgressRecord
from .protocols import Dispatch, Snapshot
from .registry import JobType, job_type_registry
from .runner import run_job
from .states import (
    ERROR_DISPATCH_FAILED,
    JOB_CANCELLED,
    JOB_FAILED,
    JOB_PENDING,
    JOB_STARTED,
    JOB_STATES_ENDED,
    JOB_STATES_PENDING_OR_RUNNING,
    JOB_STATES_WAITING,
)
from .stores.database import DatabaseProgressStore

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

logger = logging.getLogger("task_ferry.handler")

_CLEANUP_CHUNK = 500


class JobHandler:
    # ── Creation and dispatch ──────────────────────────────────────────────────

    @classmethod
    def create_and_start(cls, user: AbstractBaseUser | None, job_type_name: str, **kwargs: Any) -> Job:
        """Create a job of a registered type and dispatch it (after the surrounding
        transaction commits, for executors that run elsewhere).

        ``kwargs`` go through ``JobType.prepare_values``; ``queue``, ``priority``,
        ``run_after``, ``timeout`` (seconds) and ``max_attempts`` may be given to
        override the type's defaults.
        Raises ``JobTypeNotRegistered``, ``MaxJobCountExceeded``, or whatever
        ``prepare_values`` raises; nothing is written in those cases."""
        return cls.create_many(user, job_type_name, [kwargs])[0]

    @classmethod
    def create_many(
        cls, user: AbstractBaseUser | None, job_type_name: str, values_list: Sequence[dict[str, Any]]
    ) -> list[Job]:
        """Create and dispatch many jobs of one type with a constant number of queries.

        All or nothing: if ``prepare_values`` or ``after_job_creation`` raises for
        one job, or the batch would exceed ``max_count``, no job is created."""
        job_type = job_type_registry.get(job_type_name)
        if isinstance(values_list, dict) or not isinstance(values_list, Iterable):
            raise TypeError("create_many() takes a list of value dicts, one per job.")
        raw = [dict(v) for v in values_list]
        if not raw:
            return []
        jobs = [cls._build(job_type, user, job_type.prepare_values(dict(v), user)) for v in raw]
        executor = get_executor()
        db = router.db_for_write(job_type.model_class)
        limited = user is not None and getattr(user, "pk", None) is not None
        if not limited and _one_statement(job_type, jobs, executor, db):
            _bulk_insert(job_type.model_class, jobs, db)  # committed on its own: the job is whole
            if executor.supports_defer_on_commit:
                _submit(executor, jobs, db)
        else:
            with transaction.atomic(using=db):
                if limited:
                    with _creation_lock(db, job_type, user.pk):
                        cls._check_max_count(job_type, user, len(jobs))
                        _bulk_insert(job_type.model_class, jobs, db)
                else:
                    _bulk_insert(job_type.model_class, jobs, db)
                for job, values in zip(jobs, raw):
                    job_type.after_job_creation(job, values)
                _submit_with_transaction(executor, jobs, db)
        for job in jobs:
            signals.send(signals.job_created, job_type, job)
        if not executor.supports_defer_on_commit:
            _submit(executor, jobs, db)
        return jobs

    @staticmethod
    def _build(job_type: JobType, user: Any, values: dict[str, Any]) -> Job:
        if not isinstance(values, dict):
            raise TypeError(
                f"{type(job_type).__name__}.prepare_values() must return a dict, got {type(values).__name__}."
            )
        model = job_type.model_class
        known = {f.name for f in model._meta.concrete_fields} | {f.attname for f in model._meta.concrete_fields}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TypeError(
                f"{type(job_type).__name__}.prepare_values() returned {unknown}, which are not fields of "
                f"{model.__name__}; add the fields to the model or drop them in prepare_values()."
            )
        values.setdefault("queue", job_type.get_queue())
        values.setdefault("priority", job_type.priority)
        priority = values["priority"]
        if not isinstance(priority, int) or not -100 <= priority <= 100:
            raise ValueError(f"priority must be an int from -100 to 100, got {priority!r}.")
        timeout = values.get("timeout")
        if timeout is not None and (not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0):
            raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}.")
        attempts = values.get("max_attempts")
        if attempts is not None and (not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1):
            raise ValueError(f"max_attempts must be an int of at least 1 or None, got {attempts!r}.")
        return model(
            user=user,
            # for_concrete_model=False gives proxy models their own content type, so .specific resolves.
            content_type=ContentType.objects.get_for_model(model, for_concrete_model=False),
            type=job_type.type,
            executor_task_id=uuid.uuid4().hex,
            **values,
        )

    @staticmethod
    def _check_max_count(job_type: JobType, user: Any, adding: int) -> None:
        limit = job_type.get_max_count()
        ct = ContentType.objects.get_for_model(job_type.model_class, for_concrete_model=False)
        active = (
            Job._base_manager.filter(user=user, state__in=JOB_STATES_PENDING_OR_RUNNING)
            .filter(Q(type=job_type.type) | Q(type="", content_type=ct))
            .count()
        )
        if active + adding > limit:
            raise MaxJobCountExceeded(
                f"You can have at most {limit} concurrent {job_type.type!r} job(s) and have {active} pending or "
                f"running; wait for one to finish or cancel one first."
            )

    @classmethod
    def retry(cls, job: Job | int, user: AbstractBaseUser | None = None) -> Job:
        """Run a failed or cancelled job again (same row, next attempt).

        Attempts keep counting: the job's ``max_attempts`` covers every attempt,
        so a job that used them all runs once more and is not retried
        automatically after that. Raises ``JobNotRetryable`` for a job in any
        other state."""
        if not isinstance(job, Job):
            job = cls.get_job(user, job)
        job_type = job_type_registry.get_by_model(job)
        executor = get_executor()
        db = router.db_for_write(Job)
        fields = {
            "progress_percentage": 0,
            "progress_state": "",
            "error": "",
            "human_readable_error": "",
            "started_at": None,
            "finished_at": None,
            "result": None,
            "error_code": "",
            "heartbeat_at": None,
            "executor_task_id": uuid.uuid4().hex,
        }
        # A cancel flag raised for the previous attempt (whose worker may have died before
        # clearing it) must not stop the next one. Cleared before the transaction: the
        # job has ended, so its entry is stale whatever happens next.
        _quietly("clear", get_progress_store().clear, job.pk)
        with transaction.atomic(using=db):
            if job.user_id is not None:
                with _creation_lock(db, job_type, job.user_id):
                    cls._check_max_count(job_type, job.user, 1)
                    moved = job._transition((JOB_FAILED, JOB_CANCELLED), JOB_PENDING, **fields)
            else:
                moved = job._transition((JOB_FAILED, JOB_CANCELLED), JOB_PENDING, **fields)
            if not moved:
                raise JobNotRetryable(f"Job {job.pk} is {job.state!r}; only failed or cancelled jobs can be retried.")

            _submit_with_transaction(executor, [job], db)
        signals.send(signals.job_retried, job_type, job, exc=None, automatic=False)
        if not executor.supports_defer_on_commit:
            _submit(executor, [job], db)
        return job

    # ── Running (called by executors) ──────────────────────────────────────────

    @classmethod
    def run_by_id(cls, job_id: int) -> Any:
        """Run a job by id now, in this process (0.1.1 API). Re-raises the job's exception."""
        result = run_job(job_id)
        if result.exception is not None:
            raise result.exception
        return result.value

    @classmethod
    def run(cls, job: Job) -> Any:
        """Run a job now, in this process (0.1.1 API)."""
        return cls.run_by_id(job.pk)

    # ── Reading ────────────────────────────────────────────────────────────────

    @classmethod
    def get_job(cls, user: AbstractBaseUser | None, job_id: int, model_class: type[Job] | None = None) -> Job:
        """A job by id; with a user, only that user's job. Raises ``JobDoesNotExist``."""
        filters: dict[str, Any] = {"pk": job_id}
        if user is not None:
            filters["user"] = user
        try:
            return (model_class or Job)._base_manager.get(**filters)
        except (Job.DoesNotExist, ValueError, TypeError):
            raise JobDoesNotExist(f"Job {job_id} does not exist.") from None

    @classmethod
    def get_jobs_for_user(
        cls,
        user: AbstractBaseUser,
        states: Iterable[str] | None = None,
        job_type_name: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ):
        qs = Job.objects.filter(user=user)
        if job_type_name:
            job_type = job_type_registry.get(job_type_name)
            qs = job_type.model_class.objects.filter(user=user, type__in=(job_type.type, ""))
        if states:
            qs = qs.filter(state__in=list(states))
        return qs.select_related("content_type", "user")[offset : offset + limit]

    @classmethod
    def get_logs(cls, job: Job | int, after: int | None = None, page: int | None = None, page_size: int = 100):
        """A page of the job's log lines, oldest first (a :class:`task_ferry.logs.LogPage`):
        by cursor (``after=seq``: lines after it) or by ``page`` number (1-based).
        Check access first (``get_job(user, id)``): this reads any job's lines."""
        from .logs import get_logs

        return get_logs(job, after=after, page=page, page_size=page_size)

    @classmethod
    def reap(cls):
        """One reaper pass: end jobs whose worker died or that overran their timeout,
        dispatch due retries. Safe to run concurrently; see :mod:`task_ferry.reaper`.
        Returns a :class:`task_ferry.reaper.ReapResult`."""
        from .reaper import reap

        return reap()

    @classmethod
    def queue_depths(cls) -> dict[str, int]:
        """Pending jobs per queue, in one query."""
        rows = Job._base_manager.filter(state=JOB_PENDING).values_list("queue").annotate(n=Count("pk")).order_by()
        return {queue: n for queue, n in rows}

    # ── Cancelling ─────────────────────────────────────────────────────────────

    @classmethod
    def cancel(cls, user: AbstractBaseUser | None, job_id: int) -> Job:
        """Cancel a pending, retrying or running job; idempotent for a cancelled one.

        A pending or retrying job is cancelled at once and never runs its body
        (again; its engine task is also revoked where the executor can). A running job is recorded
        cancelled at once and stops at its next progress flush. Whichever of
        cancel and finish commits first wins; the job record, the store and the
        hooks then agree on it. Raises ``JobNotCancellable`` for an ended job."""
        job = cls.get_job(user, job_id)
        if job._transition(JOB_STATES_WAITING, JOB_CANCELLED, finished_at=timezone.now()):
            cls._after_pending_cancel(job)
            return job
        if job.state == JOB_CANCELLED:
            return job
        if job.state != JOB_STARTED:
            raise JobNotCancellable(f"Job {job_id} has already ended with state {job.state!r}.")
        # Raise the flag before the compare-and-set: the runner clears the store
        # after its own compare-and-set, so whichever order the two land in, no
        # flag outlives the job. (A flag raised for a cancel whose transaction
        # then rolls back still stops the job: cancel is not transactional.)
        store = get_progress_store()
        _quietly("request a cancel from", store.request_cancel, job.pk)
        if job._transition((JOB_STARTED,), JOB_CANCELLED, finished_at=timezone.now(), **_last_progress(store, job)):
            return job
        if job.state != JOB_CANCELLED:
            _quietly("clear", store.clear, job.pk)
            raise JobNotCancellable(f"Job {job_id} has already ended with state {job.state!r}.")
        return job

    @classmethod
    def _after_pending_cancel(cls, job: Job) -> None:
        executor = get_executor()
        if executor.supports_revoke and job.executor_task_id:
            pk, task_id = job.pk, job.executor_task_id
            transaction.on_commit(lambda: _quietly("revoke", executor.revoke, pk, task_id))
        store = get_progress_store()
        if getattr(store, "supports_subscribe", False):
            # Tell live readers (an event stream subscribed to the job) at once, as the runner
            # does when a job ends: ``clear`` with the final state publishes it. After the
            # commit, so a reader that then reads the row finds it cancelled. Stores without a
            # live channel are left alone: their readers poll, the row decides for an ended
            # job, and a pending job has no entry to clear (no extra write to the database store).
            final = Snapshot(job.pk, job.state, job.progress_percentage, job.progress_state, time.time())
            transaction.on_commit(
                lambda: _quietly("publish the cancel to", store.clear, final.job_id, final),
                using=router.db_for_write(Job),
            )
        specific = job.specific
        specific.state = job.state
        try:
            job_type = job_type_registry.get_by_model(specific)
        except JobTypeNotRegistered:
            # The cancel is recorded; a type removed since the job was created has no hooks to call.
            logger.warning("task-ferry: job %s was cancelled; its type is not registered, so no hooks ran.", job.pk)
            return
        try:
            job_type.on_cancelled(specific)
        except Exception:
            logger.exception("task-ferry: on_cancelled raised for job %s; the job stays cancelled.", job.pk)
        signals.send(signals.job_cancelled, job_type, specific)

    # ── Cleanup ────────────────────────────────────────────────────────────────

    @classmethod
    def old_jobs(cls, days: int | None = None):
        """Ended jobs created more than ``days`` (default ``JOB_EXPIRY_DAYS``) ago: what cleanup deletes."""
        days = get_setting("JOB_EXPIRY_DAYS") if days is None else days
        if not isinstance(days, int) or isinstance(days, bool) or days < 0:
            raise ValueError(f"days must be a non-negative whole number, got {days!r}.")
        return Job._base_manager.filter(
            state__in=JOB_STATES_ENDED, created_at__lt=timezone.now() - timedelta(days=days)
        )

    @classmethod
    def cleanup_old_jobs(cls, days: int | None = None) -> int:
        """Delete ended jobs created more than ``days`` (default ``JOB_EXPIRY_DAYS``) ago.

        Calls ``before_delete`` for each; a hook that raises is logged and its job
        is still deleted. Returns how many jobs were deleted."""
        old = cls.old_jobs(days)
        deleted = 0
        while True:
            ids = list(old.order_by("pk").values_list("pk", flat=True)[:_CLEANUP_CHUNK])
            if not ids:
                return deleted
            for job in _specifics(ids):
                try:
                    job_type_registry.get_by_model(job).before_delete(job)
                except Exception:
                    logger.exception("task-ferry: before_delete failed for job %s; deleting it anyway.", job.pk)
            Job._base_manager.filter(pk__in=ids).delete()
            ProgressRecord.objects.filter(job_id__in=ids).delete()
            store = get_progress_store()
            if not isinstance(store, DatabaseProgressStore):  # its rows went with ProgressRecord above
                for pk in ids:
                    _quietly("clear", store.clear, pk)
            deleted += len(ids)


# ── Helpers ────────────────────────────────────────────────────────────────────


def _last_progress(store, job: Job) -> dict[str, Any]:
    """The running job's last progress in the store, as row fields, when it is ahead of
    the row: a cancelled job's row then shows how far it got at once, not only once its
    runner notices the cancel and records it (one store round trip; none of it if the
    store is away)."""
    try:
        snapshot = store.read_many([job.pk]).get(job.pk)
    except Exception as exc:
        logger.warning("task-ferry: could not read the store for job %s: %s", job.pk, exc)
        return {}
    if snapshot is None or snapshot.percentage <= (job.progress_percentage or 0):
        return {}
    return {"progress_percentage": snapshot.percentage, "progress_state": (snapshot.label or job.progress_state)[:255]}


def _quietly(what: str, fn, *args: Any) -> None:
    try:
        fn(*args)
    except Exception as exc:
        logger.warning("task-ferry: could not %s the engine/store for job %s: %s", what, args[0], exc)


def _specifics(ids: list[int]) -> list[Job]:
    """The specific rows for ``ids``: one query per model, not one per job."""
    by_ct: dict[int, list[int]] = defaultdict(list)
    for pk, ct_id in Job._base_manager.filter(pk__in=ids).values_list("pk", "content_type_id"):
        by_ct[ct_id].append(pk)
    out: list[Job] = []
    for ct_id, pks in by_ct.items():
        model = ContentType.objects.get_for_id(ct_id).model_class() or Job
        out.extend(model._base_manager.filter(pk__in=pks))
    return out


@contextmanager
def _creation_lock(db: str, job_type: JobType, user_id: int):
    """Serialise creators of one (type, user) pair so ``max_count`` holds under concurrency.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: take the database
    write lock before counting (SQLite has one writer at a time). Other
    databases: lock the user's row."""
    connection = connections[db]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            key = zlib.crc32(f"task_ferry:{job_type.type}".encode()) - 2**31
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [key, user_id % 2**31])
        elif connection.vendor == "sqlite":
            cursor.execute(f"UPDATE {Job._meta.db_table} SET id = id WHERE 1 = 0")
        else:
            from django.contrib.auth import get_user_model

            list(get_user_model()._base_manager.using(db).select_for_update().filter(pk=user_id).values_list("pk"))
    yield


def _one_statement(job_type: JobType, jobs: list[Job], executor, db: str) -> bool:
    """Whether creating ``jobs`` is one INSERT and nothing else, so it needs no transaction
    of its own (a BEGIN and a COMMIT fewer): one job of a model with one table, outside any
    transaction, with no ``after_job_creation`` and no ``pre_save``/``post_save`` receivers
    that could write beside it, for an engine that does not queue in ``db`` (that submit
    writes in the job's transaction). Users' jobs are not: their ``max_count`` takes a lock
    and a count in the transaction. A proxy that overrides ``save`` may write beside the
    row too, and a connection in manual transaction management commits when its owner says."""
    model = job_type.model_class
    connection = connections[db]
    return (
        len(jobs) == 1
        and model._meta.concrete_model is Job
        and model.save is Job.save
        and model.save_base is Job.save_base
        and not connection.in_atomic_block
        and connection.get_autocommit()
        and getattr(job_type.after_job_creation, "__func__", None) is JobType.after_job_creation
        and not (pre_save.has_listeners(model) or post_save.has_listeners(model))
        and not queue_in(executor, db)
    )


def _bulk_insert(model: type[Job], jobs: list[Job], db: str) -> None:
    """INSERT the jobs in batches: base rows first (ids come back), then each
    subclass table. Django's bulk_create refuses multi-table models, so the
    subclass tables are written with the same insert compiler it uses."""
    connection = connections[db]
    now = timezone.now()
    for job in jobs:
        job.created_at = job.updated_at = now
    if len(jobs) == 1 or not connection.features.can_return_rows_from_bulk_insert:
        for job in jobs:
            job.save(using=db, force_insert=True)
        return
    chain = [m for m in reversed(model._meta.get_parent_list()) if m._meta.concrete_model is m] + [model]
    base, rest = chain[0], chain[1:]
    base_rows = [base(**{f.attname: getattr(job, f.attname) for f in base._meta.concrete_fields}) for job in jobs]
    for row in base_rows:
        row.created_at = row.updated_at = now
    base._base_manager.using(db).bulk_create(base_rows)
    for job, row in zip(jobs, base_rows):
        job.pk = row.pk
        for parent_model in rest:
            for field in parent_model._meta.local_concrete_fields:
                if field.primary_key and field.remote_field is not None:
                    setattr(job, field.attname, row.pk)
    for level in rest:
        fields = [f for f in level._meta.local_concrete_fields]
        size = connection.ops.bulk_batch_size(fields, jobs) or len(jobs)
        for start in range(0, len(jobs), size):
            level._base_manager._insert(jobs[start : start + size], fields=fields, using=db)
    for job in jobs:
        job._state.adding = False
        job._state.db = db


def queue_in(executor, db: str) -> bool:
    """Whether the executor's engine keeps its queue in the database ``db`` (its
    ``queue_database``): its submit then writes in the job's own transaction, so the job
    and its run commit together, or neither does, with one commit instead of three."""
    return getattr(executor, "queue_database", None) == db


def _submit_with_transaction(executor, jobs: list[Job], db: str) -> None:
    """From inside the jobs' transaction: submit them now if the engine's queue is in
    ``db``, on commit if the executor defers; an inline executor is called by the caller
    once the transaction has ended."""
    if queue_in(executor, db):
        _submit(executor, jobs, db, in_transaction=True)
    elif executor.supports_defer_on_commit:
        transaction.on_commit(lambda: _submit(executor, jobs, db), using=db)


def _submit(executor, jobs: list[Job], db: str, in_transaction: bool = False) -> None:
    """Hand the jobs to the executor; record engine ids that differ from ours.

    A job the engine refuses is recorded failed with the reason, and the error
    is raised to the caller; it is never left pending with no run scheduled.
    ``in_transaction`` (the jobs' own, see :func:`queue_in`): the first refusal is
    raised at once instead, undoing the jobs with the transaction, and the caller has
    nothing to retry but the call."""
    changed: list[Job] = []
    first_error: Exception | None = None
    for job in jobs:
        dispatch = Dispatch(
            job_id=job.pk,
            task_id=job.executor_task_id,
            job_type=job.type,
            queue=job.queue,
            priority=job.priority,
            run_after=job.run_after,
        )
        try:
            engine_id = executor.submit(dispatch)
        except Exception as exc:
            if in_transaction:
                raise
            if executor.supports_defer_on_commit:
                logger.error("task-ferry: could not dispatch job %s: %s", job.pk, exc)
                job._transition(
                    (JOB_PENDING,),
                    JOB_FAILED,
                    error=f"dispatch failed: {type(exc).__name__}: {exc}",
                    error_code=ERROR_DISPATCH_FAILED,
                    human_readable_error="The job could not be handed to the worker queue; try again later.",
                    finished_at=timezone.now(),
                )
            first_error = first_error or exc
            continue
        if engine_id and engine_id != job.executor_task_id:
            job.executor_task_id = str(engine_id)
            changed.append(job)
    if changed:
        Job._base_manager.using(db).bulk_update(changed, ["executor_task_id"])
    if first_error is not None:
        raise first_error
