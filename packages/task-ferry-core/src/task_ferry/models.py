"""The ``Job`` model (import path and fields kept from 0.1.1).

Each job type may subclass ``Job`` to add its own fields (multi-table
inheritance); ``job.specific`` returns the subclass row.

Lifecycle fields (state, progress, errors, timestamps, attempts, result) only
change through compare-and-set updates: ``UPDATE ... WHERE state IN (...)``.
A plain ``job.save()`` on an existing job therefore leaves them alone, so a
job's ``run`` that saves its own fields can never overwrite a cancel that
arrived meanwhile. Name them in ``update_fields`` to write them on purpose.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from .states import (
    JOB_CANCELLED,
    JOB_FAILED,
    JOB_FINISHED,
    JOB_PENDING,
    JOB_RETRYING,
    JOB_STARTED,
    JOB_STATES_ENDED,
    JOB_STATES_PENDING_OR_RUNNING,
    JOB_STATES_RUNNING,
)

__all__ = [
    "JOB_CANCELLED",
    "JOB_FAILED",
    "JOB_FINISHED",
    "JOB_PENDING",
    "JOB_RETRYING",
    "JOB_STARTED",
    "JOB_STATES_ENDED",
    "JOB_STATES_PENDING_OR_RUNNING",
    "JOB_STATES_RUNNING",
    "Job",
    "JobAttempt",
    "JobLog",
    "JobQuerySet",
    "ProgressRecord",
]

#: Fields written only by compare-and-set transitions (see module docstring).
LIFECYCLE_FIELDS = frozenset(
    {
        "state",
        "progress_percentage",
        "progress_state",
        "error",
        "human_readable_error",
        "started_at",
        "finished_at",
        "attempts",
        "result",
        "executor_task_id",
        "heartbeat_at",
        "error_code",
    }
)


class JobQuerySet(models.QuerySet):
    def pending_or_running(self):
        return self.filter(state__in=JOB_STATES_PENDING_OR_RUNNING)

    def ended(self):
        return self.filter(state__in=JOB_STATES_ENDED)

    def transition(self, from_states: Iterable[str], to_state: str, **fields: Any) -> int:
        """Compare-and-set: move the matching jobs that are in ``from_states`` to
        ``to_state`` and return how many moved. Always updates the base table."""
        fields.setdefault("updated_at", timezone.now())
        return self._base_filter().filter(state__in=tuple(from_states)).update(state=to_state, **fields)

    def _base_filter(self):
        # Transitions run on the base table; a subclass queryset is narrowed by pk.
        if self.model is Job:
            return self
        return Job._base_manager.filter(pk__in=self.values("pk"))


class Job(models.Model):
    """Base model for all job types; subclass it to add a type's own fields."""

    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, related_name="task_ferry_jobs")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="task_ferry_jobs",
    )
    type = models.CharField(
        max_length=100, blank=True, default="", db_index=True, help_text="Registered JobType.type of this job."
    )
    state = models.CharField(
        max_length=32, default=JOB_PENDING, db_index=True, help_text="Current lifecycle state of the job."
    )
    progress_percentage = models.IntegerField(
        default=0, help_text="0–100. Updated via cache mid-run; persisted to DB at completion."
    )
    progress_state = models.CharField(
        max_length=255, blank=True, default="", help_text="Human-readable description of the current step."
    )
    error = models.TextField(blank=True, default="", help_text="Short error string (exception message).")
    human_readable_error = models.TextField(blank=True, default="", help_text="Longer, user-facing error description.")
    queue = models.CharField(max_length=100, default="default", help_text="Queue the job was dispatched to.")
    priority = models.SmallIntegerField(default=0, help_text="-100..100; higher runs sooner where the engine allows.")
    run_after = models.DateTimeField(null=True, blank=True, help_text="Do not start before this time.")
    attempts = models.PositiveIntegerField(default=0, help_text="How many times a worker has started this job.")
    executor_task_id = models.CharField(max_length=255, blank=True, default="", help_text="The engine's id of the run.")
    result = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder, help_text="Return value of run().")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life of the worker running the job (see the reaper)."
    )
    timeout = models.FloatField(
        null=True, blank=True, help_text="Seconds an attempt may run; empty means the job type's timeout."
    )
    max_attempts = models.PositiveIntegerField(
        null=True, blank=True, help_text="Attempts allowed in all; empty means the job type's retry policy."
    )
    error_code = models.CharField(
        max_length=32,
        blank=True,
        default="",
        help_text='Why the last attempt failed: "exception", "timeout", "worker_lost" or "dispatch_failed".',
    )

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ("-created_at",)
        indexes = [
            models.Index(fields=["state", "queue"], name="task_ferry_state_queue_idx"),
            models.Index(fields=["user", "type", "state"], name="task_ferry_user_type_idx"),
            # The reaper's scans: stale heartbeats of started jobs, due retries.
            models.Index(fields=["state", "heartbeat_at"], name="task_ferry_state_beat_idx"),
            models.Index(fields=["state", "run_after"], name="task_ferry_state_after_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type or type(self).__name__} #{self.pk} ({self.state})"

    # ── Saving ─────────────────────────────────────────────────────────────────

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding and kwargs.get("update_fields") is None and not args:
            kwargs["update_fields"] = [
                f.name
                for f in self._meta.concrete_fields
                if not f.primary_key and f.name not in LIFECYCLE_FIELDS and not f.auto_created
            ]
        super().save(*args, **kwargs)

    # ── Live store (0.1.1 API) ─────────────────────────────────────────────────

    def _live(self):
        from .conf import get_progress_store
        from .health import store_health
        from .live import live_progress

        # A store outage shows the database values; it never raises from a property read.
        return live_progress([self], on_store_error=lambda exc: store_health.failed(get_progress_store(), exc))[self.pk]

    def get_cached_state(self) -> str:
        return self._live().state

    def get_cached_progress_percentage(self) -> int:
        return self._live().percentage

    def get_cached_progress_state(self) -> str:
        return self._live().label

    def clear_cache(self) -> None:
        from .conf import get_progress_store

        get_progress_store().clear(self.pk)

    def set_progress(self, percentage: int, state_label: str = "") -> bool:
        """Publish progress to the store now (0.1.1 API). Returns whether a cancel was requested.

        Inside ``run`` prefer the ``progress`` argument: it coalesces writes."""
        import time

        from .conf import get_progress_store
        from .protocols import Snapshot

        self.progress_percentage = max(0, min(100, int(percentage)))
        if state_label:
            self.progress_state = state_label
        return get_progress_store().write(
            Snapshot(self.pk, self.state, self.progress_percentage, self.progress_state, time.time())
        )

    # ── Logs ───────────────────────────────────────────────────────────────────

    def log(self, message: str, level: str | int = "info") -> None:
        """Add a line to the job's log (``JobLog``); ``level`` is a name (``"info"``,
        ``"warning"``, ...) or a ``logging`` level number.

        Inside ``run`` the line is written at once, in one INSERT together with any
        ``logging`` records captured since the last write (``capture_logs``), and
        numbered by the runner. Outside a run it is numbered after the job's last line."""
        from .logs import write_line

        write_line(self, message, level)

    # ── State transitions (compare-and-set) ────────────────────────────────────

    def _transition(self, from_states: Iterable[str], to_state: str, **fields: Any) -> bool:
        now = timezone.now()
        fields.setdefault("updated_at", now)
        moved = Job._base_manager.filter(pk=self.pk, state__in=tuple(from_states)).update(state=to_state, **fields)
        if moved:
            self.state = to_state
            for name, value in fields.items():
                setattr(self, name, value)
        else:
            self.state = Job._base_manager.filter(pk=self.pk).values_list("state", flat=True).first() or self.state
        return bool(moved)

    def mark_started(self) -> bool:
        return self._transition([JOB_PENDING], JOB_STARTED, started_at=timezone.now())

    def mark_finished(self) -> bool:
        return self._transition([JOB_STARTED], JOB_FINISHED, progress_percentage=100, finished_at=timezone.now())

    def mark_failed(self, error: str, human_readable_error: str = "") -> bool:
        return self._transition(
            JOB_STATES_PENDING_OR_RUNNING,
            JOB_FAILED,
            error=error,
            human_readable_error=human_readable_error or error,
            finished_at=timezone.now(),
        )

    def mark_cancelled(self) -> bool:
        return self._transition(JOB_STATES_PENDING_OR_RUNNING, JOB_CANCELLED, finished_at=timezone.now())

    # ── Convenience properties (0.1.1 API) ─────────────────────────────────────

    @property
    def is_pending(self) -> bool:
        return self.get_cached_state() == JOB_PENDING

    @property
    def is_running(self) -> bool:
        return self.get_cached_state() == JOB_STARTED

    @property
    def is_finished(self) -> bool:
        return self.get_cached_state() == JOB_FINISHED

    @property
    def is_failed(self) -> bool:
        return self.get_cached_state() == JOB_FAILED

    @property
    def is_cancelled(self) -> bool:
        return self.get_cached_state() == JOB_CANCELLED

    @property
    def has_ended(self) -> bool:
        return self.get_cached_state() in JOB_STATES_ENDED

    # ── Polymorphic resolution ─────────────────────────────────────────────────

    @property
    def specific(self) -> Job:
        """The concrete subclass instance (``self`` if it already is one)."""
        model_class = ContentType.objects.get_for_id(self.content_type_id).model_class()
        if model_class is None or isinstance(self, model_class):
            return self
        return model_class._base_manager.get(pk=self.pk)


class ProgressRecord(models.Model):
    """Row kept by the ``database`` progress store for each running job.

    Written through the store's own connection (autocommit), so other processes
    see it while the job's own transaction is still open. No foreign key: the
    job row may not be committed yet when the first snapshot is written."""

    job_id = models.BigIntegerField(primary_key=True)
    state = models.CharField(max_length=32)
    percentage = models.SmallIntegerField(default=0)
    label = models.CharField(max_length=255, blank=True, default="")
    cancel_requested = models.BooleanField(default=False)
    updated_at = models.FloatField(default=0)

    class Meta:
        db_table = "task_ferry_progress"

    def __str__(self) -> str:
        return f"progress of job {self.job_id}: {self.percentage}% {self.label}"


class JobAttempt(models.Model):
    """One attempt of a job: written when the attempt ends (by the runner, or by the
    reaper for an attempt whose worker died or overran its timeout)."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="attempt_records")
    number = models.PositiveIntegerField(help_text="1 for the first attempt; equals job.attempts when it started.")
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    #: ``finished``, ``failed``, ``cancelled``, ``timeout`` or ``worker_lost``.
    outcome = models.CharField(max_length=32)
    error = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")

    class Meta:
        ordering = ("job", "number")
        constraints = [models.UniqueConstraint(fields=["job", "number"], name="task_ferry_attempt_unique")]

    def __str__(self) -> str:
        return f"attempt {self.number} of job {self.job_id}: {self.outcome}"


class JobLog(models.Model):
    """A line of a job's log. ``seq`` numbers a job's lines 1, 2, 3, ... in the order
    they were written; read them with ``JobHandler.get_logs``."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="log_lines")
    seq = models.PositiveIntegerField()
    #: ``debug``, ``info``, ``warning``, ``error`` or ``critical``.
    level = models.CharField(max_length=10, default="info")
    message = models.TextField()
    #: The ``logging`` logger of a captured record; empty for ``job.log()`` lines.
    logger = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ("job", "seq")
        constraints = [models.UniqueConstraint(fields=["job", "seq"], name="task_ferry_log_unique")]

    def __str__(self) -> str:
        return f"job {self.job_id} #{self.seq} [{self.level}] {self.message[:60]}"
