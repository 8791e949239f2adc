"""Exceptions raised by task-ferry (import path kept from 0.1.1)."""


class TaskFerryError(Exception):
    """Base class for every task-ferry error."""


class JobDoesNotExist(TaskFerryError):
    """Raised when a job cannot be found for the given user and ID."""


class JobCancelled(TaskFerryError):
    """Raised inside a running job when cancellation is detected.

    Raised by ``Progress.increment`` when the store reports a cancel request;
    a job may also raise it itself. The runner catches it and records the job
    as cancelled.
    """


class JobTimedOut(TaskFerryError):
    """The job ran past its timeout (``JobType.timeout`` or the job's ``timeout``).

    Raised inside ``run`` at the first progress flush after the deadline (or,
    with ``isolation = "process"``, when the runner stops the job's process).
    The job is recorded ``failed`` with ``error_code = "timeout"`` (or retried,
    if the type's ``retry_on`` matches it), and ``on_error`` gets this exception.
    """


class WorkerLost(TaskFerryError):
    """The process running a job died without recording an outcome.

    Not raised in a job: the reaper (``manage.py ferry reap``) passes it to
    ``on_error`` and the retry policy when it ends a job whose heartbeat stopped
    (``error_code = "worker_lost"``), and the runner does when a job's isolated
    process dies.
    """


class JobNotCancellable(TaskFerryError):
    """Raised when cancel() is called on a job that has already ended."""


class JobNotRetryable(TaskFerryError):
    """Raised when retry() is called on a job that is not failed or cancelled."""


class JobTypeNotRegistered(TaskFerryError):
    """Raised when looking up a type name that has not been registered."""


class MaxJobCountExceeded(TaskFerryError):
    """Raised when a user tries to enqueue more jobs than max_count allows."""


class ExecutorNotConfigured(TaskFerryError):
    """Raised when the TASK_FERRY executor setting is missing or invalid."""


class ProgressStoreNotConfigured(TaskFerryError):
    """Raised when the TASK_FERRY progress store setting is missing or invalid."""


class Unsupported(TaskFerryError):
    """Raised by an optional plugin operation the plugin does not support.

    Plugins declare what they support through their ``supports_*`` flags; an
    operation whose flag is False raises this error naming the plugin and the
    operation.
    """
