"""Job types and their registry (import path and API kept from 0.1.1).

Define a type by subclassing :class:`JobType` and register an instance, usually
in ``AppConfig.ready()``::

    from task_ferry.registry import job_type_registry
    job_type_registry.register(ExportJobType())
"""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from .models import Job
    from .progress import Progress


#: What :meth:`JobType.has_permission` is asked about.
PERMISSION_ACTIONS = ("create", "view", "cancel", "retry")


class JobType:
    """Base class for job types.

    Required: ``type`` (unique string), ``model_class`` (``Job`` or a subclass)
    and ``run(job, progress)``. Everything else has a default.
    """

    type: str = ""
    model_class: type[Job] | None = None

    #: Maximum pending-or-running jobs of this type per user; None means the
    #: ``MAX_JOBS_PER_USER_PER_TYPE`` setting. Jobs without a user are not limited.
    max_count: int | None = None
    #: Queue name; None means the ``DEFAULT_QUEUE`` setting.
    queue: str | None = None
    #: -100..100, higher runs sooner where the executor supports priorities.
    priority: int = 0

    # ── Retries (a job's own ``max_attempts`` overrides the type's) ─────────────

    #: Attempts in all, the first included: 1 means never retry.
    max_attempts: int = 1
    #: Exceptions that retry (when attempts remain); others fail at once.
    #: ``JobTimedOut`` and ``WorkerLost`` are ``Exception`` subclasses too.
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    #: Backoff before attempt n+1: ``retry_backoff * 2 ** (n - 1)`` seconds, at most
    #: ``retry_backoff_max``; with ``retry_jitter``, a uniform random share of that ("full jitter").
    retry_backoff: float = 2.0
    retry_backoff_max: float = 300.0
    retry_jitter: bool = True

    # ── Timeouts and isolation ─────────────────────────────────────────────────

    #: Seconds an attempt may run; None: no limit. A job's own ``timeout`` overrides it.
    timeout: float | None = None
    #: None: ``run`` runs in the worker's thread. ``"process"``: in a child process
    #: the runner can kill, so a job that never reaches a progress flush still
    #: stops at its timeout (SIGTERM, then SIGKILL after ``TIMEOUT_GRACE``).
    isolation: str | None = None

    # ── Logs ───────────────────────────────────────────────────────────────────

    #: Also store the ``logging`` records emitted by the thread running the job
    #: (those that pass the loggers' levels) as job log lines.
    capture_logs: bool = False

    # ── Hooks (all optional) ───────────────────────────────────────────────────

    def prepare_values(self, values: dict[str, Any], user: Any) -> dict[str, Any]:
        """Validate and transform values before the job row is created; return model field values."""
        return values

    def after_job_creation(self, job: Job, values: dict[str, Any]) -> None:
        """Called right after the job row is saved, before dispatch."""

    def before_run(self, job: Job) -> None:
        """Called in the worker after the job is claimed, before ``run``."""

    def run(self, job: Job, progress: Progress) -> Any:
        """Do the work. A JSON-serialisable return value is stored as ``job.result``."""
        raise NotImplementedError(f"{type(self).__name__} must implement run(job, progress).")

    def after_run(self, job: Job) -> None:
        """Called after every run, whatever its outcome (finished, failed or cancelled)."""

    def on_error(self, job: Job, exc: BaseException) -> None:
        """Called after the job is recorded as failed (``exc`` is ``JobTimedOut`` for a
        timeout, ``WorkerLost`` when the reaper ends a job whose worker died)."""

    def on_retry(self, job: Job, exc: BaseException) -> None:
        """Called after a failed attempt is recorded and the next one scheduled
        (``job.run_after`` says when)."""

    def on_cancelled(self, job: Job) -> None:
        """Called once after the job is recorded as cancelled."""

    def before_delete(self, job: Job) -> None:
        """Called before ``cleanup_old_jobs`` deletes the job row."""

    # ── Permissions ────────────────────────────────────────────────────────────

    @classmethod
    def has_permission(cls, user: Any, action: str, job: Job | None = None) -> bool:
        """May ``user`` do ``action`` with ``job`` (a job of this type, an instance of its
        ``model_class``), or with jobs of this type when ``job`` is None?

        ``action`` is one of :data:`PERMISSION_ACTIONS`:

        ``"create"``  ``job`` is None: may the user create a job of this type;
        ``"view"``    read the job (detail, events, logs); with ``job=None``: may the
                      user's list include jobs of this type at all;
        ``"cancel"``, ``"retry"``  the job.

        The default policy: an anonymous user may do nothing; with no job, any
        authenticated user may; with a job, its owner or a staff user
        (``user.is_staff``). Core itself never calls this: callers that act for a
        user do (task-ferry-drf on every endpoint, where an answer of False for
        ``view`` makes the job look missing). Override it to narrow the policy, and
        call ``super().has_permission(user, action, job)`` to keep the default
        rules and the check of ``action``::

            def has_permission(self, user, action, job=None):
                if action == "create" and not user.has_perm("exports.add_export"):
                    return False
                return super().has_permission(user, action, job)

        Raises ``ValueError`` for an unknown ``action``. Works on the class too
        (``JobType.has_permission(user, "view", job)`` is the default policy).
        """
        if action not in PERMISSION_ACTIONS:
            raise ValueError(
                f"unknown permission action {action!r}; has_permission() actions are {', '.join(PERMISSION_ACTIONS)}."
            )
        if user is None or not getattr(user, "is_authenticated", False):
            return False
        if job is None:
            return True
        return bool(getattr(user, "is_staff", False)) or (job.user_id is not None and job.user_id == user.pk)

    # ── Resolved settings ──────────────────────────────────────────────────────

    def get_max_count(self) -> int:
        from .conf import get_setting

        return self.max_count if self.max_count is not None else int(get_setting("MAX_JOBS_PER_USER_PER_TYPE"))

    def get_queue(self) -> str:
        from .conf import get_setting

        return self.queue or str(get_setting("DEFAULT_QUEUE"))

    def get_max_attempts(self, job: Job) -> int:
        return job.max_attempts if job.max_attempts is not None else self.max_attempts

    def get_timeout(self, job: Job) -> float | None:
        return job.timeout if job.timeout is not None else self.timeout

    def should_retry(self, job: Job, exc: BaseException) -> bool:
        """Whether the attempt that just ended with ``exc`` gets a successor.
        ``job.attempts`` is the number of the attempt that ended."""
        return job.attempts < self.get_max_attempts(job) and isinstance(exc, self.retry_on)

    def retry_delay(self, job: Job) -> float:
        """Seconds before the next attempt, after attempt number ``job.attempts`` failed."""
        n = max(1, job.attempts)
        delay = min(float(self.retry_backoff_max), float(self.retry_backoff) * 2 ** min(n - 1, 62))
        return random.uniform(0, delay) if self.retry_jitter and delay > 0 else delay

    def __repr__(self) -> str:
        return f"<{type(self).__name__} type={self.type!r}>"


class JobTypeRegistry:
    def __init__(self) -> None:
        self._by_type: dict[str, JobType] = {}
        self._by_model: dict[type, JobType] = {}

    def register(self, job_type: JobType) -> JobType:
        """Register a ``JobType`` instance. Registering the same class twice is a no-op."""
        from .models import Job

        if isinstance(job_type, type):
            raise ImproperlyConfigured(
                f"register() takes a JobType instance: use register({job_type.__name__}()), not the class."
            )
        name = job_type.type
        if not isinstance(name, str) or not name:
            raise ValueError(f"{type(job_type).__name__}.type must be a non-empty string.")
        if len(name) > 100:
            raise ValueError(f"{type(job_type).__name__}.type {name!r} is longer than 100 characters.")
        model = job_type.model_class
        if model is None:
            raise ValueError(f"{type(job_type).__name__}.model_class must be set.")
        if not (isinstance(model, type) and issubclass(model, Job)) or model._meta.abstract:
            raise ImproperlyConfigured(
                f"{type(job_type).__name__}.model_class must be task_ferry.models.Job or a concrete subclass of it, "
                f"got {model!r}."
            )
        if not isinstance(job_type.priority, int) or not -100 <= job_type.priority <= 100:
            raise ImproperlyConfigured(
                f"{type(job_type).__name__}.priority must be an int from -100 to 100, got {job_type.priority!r}."
            )
        if job_type.max_count is not None and (not isinstance(job_type.max_count, int) or job_type.max_count < 1):
            raise ImproperlyConfigured(
                f"{type(job_type).__name__}.max_count must be a positive int or None, got {job_type.max_count!r}."
            )
        _check_lifecycle_policy(job_type)
        if job_type.queue is not None and (not isinstance(job_type.queue, str) or not job_type.queue):
            raise ImproperlyConfigured(
                f"{type(job_type).__name__}.queue must be a non-empty string or None, got {job_type.queue!r}."
            )
        existing = self._by_type.get(name)
        if existing is not None:
            if type(existing) is type(job_type):
                return existing
            raise ValueError(
                f"A job type with type={name!r} is already registered ({type(existing).__name__}); "
                f"type names must be unique."
            )
        self._by_type[name] = job_type
        self._by_model.setdefault(model, job_type)
        return job_type

    def unregister(self, type_name: str) -> None:
        job_type = self._by_type.pop(type_name, None)
        if job_type is not None and self._by_model.get(job_type.model_class) is job_type:
            del self._by_model[job_type.model_class]
            for other in self._by_type.values():
                self._by_model.setdefault(other.model_class, other)

    def get(self, type_name: str) -> JobType:
        from .exceptions import JobTypeNotRegistered

        try:
            return self._by_type[type_name]
        except KeyError:
            raise JobTypeNotRegistered(
                f"No job type registered for {type_name!r}. Available: {sorted(self._by_type)}. "
                f"Register it with job_type_registry.register(...) in your AppConfig.ready()."
            ) from None

    def get_by_model(self, job: Job) -> JobType:
        """The type of a job instance: by its ``type`` column, else by its model class."""
        from .exceptions import JobTypeNotRegistered

        if job.type and job.type in self._by_type:
            return self._by_type[job.type]
        for cls in type(job).__mro__:
            if cls in self._by_model:
                return self._by_model[cls]
        # A base Job row of a subclass type (0.1.1 rows have no `type`): resolve by its specific class.
        specific = job.specific
        if type(specific) is not type(job):
            return self.get_by_model(specific)
        raise JobTypeNotRegistered(
            f"No job type registered for job {job.pk} (type={job.type!r}, model {type(job).__name__})."
        )

    def all(self) -> list[JobType]:
        return list(self._by_type.values())

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._by_type

    def __repr__(self) -> str:
        return f"<JobTypeRegistry types={list(self._by_type)}>"


def _check_lifecycle_policy(job_type: JobType) -> None:
    name = type(job_type).__name__

    def bad(attr: str, what: str) -> ImproperlyConfigured:
        return ImproperlyConfigured(f"{name}.{attr} must be {what}, got {getattr(job_type, attr)!r}.")

    def number(value: Any) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool)

    if (
        not isinstance(job_type.max_attempts, int)
        or isinstance(job_type.max_attempts, bool)
        or job_type.max_attempts < 1
    ):
        raise bad("max_attempts", "an int of at least 1")
    retry_on = job_type.retry_on
    if not isinstance(retry_on, tuple) or not all(
        isinstance(c, type) and issubclass(c, BaseException) for c in retry_on
    ):
        raise bad("retry_on", "a tuple of exception classes")
    for attr in ("retry_backoff", "retry_backoff_max"):
        if not number(getattr(job_type, attr)) or getattr(job_type, attr) < 0:
            raise bad(attr, "a number of seconds, 0 or more")
    if job_type.timeout is not None and (not number(job_type.timeout) or job_type.timeout <= 0):
        raise bad("timeout", "a positive number of seconds or None")
    if job_type.isolation not in (None, "process"):
        raise bad("isolation", 'None or "process"')
    if job_type.isolation == "process" and not hasattr(os, "fork"):
        raise ImproperlyConfigured(f'{name}.isolation = "process" needs os.fork, which this platform lacks.')


# 0.1.1 exposed the class under a private name.
_JobTypeRegistry = JobTypeRegistry

job_type_registry: JobTypeRegistry = JobTypeRegistry()
