"""The two plugin protocols: ``Executor`` and ``ProgressStore``.

Both are small ``typing.Protocol``s. A plugin is any class that takes its
``OPTIONS`` dict as the single constructor argument and provides the methods
below; it never reads ``django.conf.settings`` itself. What a plugin can do is
declared with ``supports_*`` flags; an optional operation whose flag is False
raises :class:`task_ferry.exceptions.Unsupported`. Behaviour is proven by the
conformance kit in :mod:`task_ferry.testing`, not by inheritance.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    from django.core.checks import CheckMessage


@dataclass(frozen=True, slots=True)
class Dispatch:
    """What an executor needs to schedule one job run."""

    job_id: int
    #: Id chosen by core and already stored on the job. Engines that accept a
    #: caller-chosen id (Celery ``task_id``, RQ ``job_id``) should use it, so no
    #: extra query is needed to record the engine's id.
    task_id: str
    job_type: str
    queue: str
    #: Higher runs sooner; range -100..100 (the django.tasks convention).
    priority: int = 0
    run_after: datetime | None = None


@runtime_checkable
class Executor(Protocol):
    """Schedules job runs on an engine. The engine's worker calls
    :func:`task_ferry.runner.run_job` with the job id; nothing else.

    Flags (class or instance attributes: a plugin may decide them from its
    OPTIONS, as celery does for ``supports_kill`` from its pool; core and the kit
    read them from the instance):

    ``supports_defer_on_commit``
        True: core calls :meth:`submit` from ``transaction.on_commit`` so the
        worker never sees an uncommitted job. False (``immediate``): run inline.
    ``out_of_process``
        True if jobs run in another process, so the progress store must be
        visible across processes (checked by ``task_ferry.W004``).
    ``supports_queues`` / ``supports_priority`` / ``supports_delay``
        Whether ``Dispatch.queue`` / ``priority`` / ``run_after`` are honoured.
    ``supports_revoke``
        :meth:`revoke` drops a pending job from the engine.
    ``supports_kill``
        :meth:`kill` stops a running attempt.

    Optional attribute ``queue_database`` (default None): the alias of the project's
    database the engine keeps its queue in (django-tasks-db's ``DatabaseBackend``).
    For jobs written to that database core calls :meth:`submit` inside the job's own
    transaction instead of on commit: the worker still sees the run only once the
    job is committed, and the job and its run commit together or not at all.
    """

    protocol_version: ClassVar[int]
    supports_defer_on_commit: ClassVar[bool]
    out_of_process: ClassVar[bool]
    supports_queues: ClassVar[bool]
    supports_priority: ClassVar[bool]
    supports_delay: ClassVar[bool]
    supports_revoke: ClassVar[bool]
    supports_kill: ClassVar[bool]

    def submit(self, dispatch: Dispatch) -> str | None:
        """Schedule one run; return the engine's id if it differs from ``dispatch.task_id``."""

    def revoke(self, job_id: int, task_id: str) -> None:
        """Drop a pending run from the engine (``supports_revoke``)."""

    def kill(self, job_id: int, task_id: str) -> None:
        """Stop a running attempt (``supports_kill``)."""

    def check(self) -> list[CheckMessage]:
        """Django system-check messages about this executor's configuration."""

    # Optional: ``recover(limit: int) -> list[int]``. An engine that can lose a delivery
    # after taking it and before the runner's claim (a worker dying in between, with no
    # redelivery) implements it: dispatch again the ``pending`` jobs whose engine task ended
    # without running them, at most ``limit``, and return their ids. The reaper calls it
    # on every pass; it must be safe with several reapers at once (compare-and-set).


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A running job's live state as kept by a progress store."""

    job_id: int
    state: str
    percentage: int
    label: str
    #: Unix time of the write.
    updated_at: float
    cancel_requested: bool = False


@runtime_checkable
class ProgressStore(Protocol):
    """Holds live progress of running jobs, and cancel requests.

    Flags (class or instance attributes):

    ``supports_cross_process``
        Snapshots written in one process are readable in every other process
        of the deployment (False for LocMemCache, say).
    ``supports_mid_transaction``
        A snapshot is visible to others while the job's own database
        transaction is still open.
    ``supports_subscribe``
        :meth:`subscribe` yields snapshots as they are written.

    Every method may raise on connection trouble; core catches it around
    writes from a running job, so no store error reaches the job's ``run``.
    """

    protocol_version: ClassVar[int]
    supports_cross_process: bool
    supports_mid_transaction: bool
    supports_subscribe: bool

    def write(self, snapshot: Snapshot) -> bool:
        """Store ``snapshot`` and return whether a cancel was requested, in one round trip
        where the backend allows it."""

    def read_many(self, job_ids: Iterable[int]) -> dict[int, Snapshot]:
        """Snapshots of the given jobs that have one, in one round trip."""

    def request_cancel(self, job_id: int) -> None:
        """Ask the running job to stop; its next :meth:`write` returns True."""

    def clear(self, job_id: int, final: Snapshot | None = None) -> None:
        """Forget the job's snapshot and cancel flag. ``final`` is the job's end state,
        for stores that tell subscribers about it."""

    def subscribe(self, job_id: int, timeout: float) -> Iterator[Snapshot]:
        """Yield snapshots as they are written, until the job ends or ``timeout``
        passes without one (``supports_subscribe``)."""

    def check(self) -> list[CheckMessage]:
        """Django system-check messages about this store's configuration."""
