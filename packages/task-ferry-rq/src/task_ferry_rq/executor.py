"""The ``rq`` executor: jobs run as the RQ job function ``task_ferry_rq.jobs.run_job``.

Settings::

    INSTALLED_APPS = [..., "task_ferry", "task_ferry_rq"]
    TASK_FERRY = {
        "EXECUTOR": {"BACKEND": "rq", "OPTIONS": {"URL": "redis://127.0.0.1:6379/0"}},
    }

and a worker with Django set up, consuming the queues in priority order, with
RQ's scheduler (needed for ``run_after``)::

    python manage.py ferry_rqworker --with-scheduler high default low

OPTIONS (all optional):

``URL``
    Redis URL of the queues (``redis://127.0.0.1:6379/0``).
``CONNECTION``
    A ``redis.Redis`` client, or the dotted path of one (``"proj.redis.client"``),
    instead of ``URL``. Must not use ``decode_responses=True`` (RQ stores bytes).
``DEFAULT_TIMEOUT``
    RQ's ``job_timeout`` in seconds, after which RQ's worker kills the job's work
    horse; ``None`` (default): no RQ limit. Core's own ``JobType.timeout`` is the
    place for job timeouts; this is a backstop.
``WORKER_CLASS``
    The RQ worker class the workers run (``rq worker -w``; ``ferry_rqworker`` uses
    it), default ``"rq.Worker"``. ``supports_kill`` is False for
    ``rq.SimpleWorker`` and its subclasses: they run jobs inside the worker
    process, which RQ's stop command cannot stop.

What is sent: ``queue.enqueue_call("task_ferry_rq.jobs.run_job",
args=(job_id, job_type), job_id=dispatch.task_id, at_front=priority > 0, ...)``
on the RQ queue named ``dispatch.queue``; with a future ``run_after``,
``queue.enqueue_at(...)`` instead (the worker's scheduler moves it to the queue
when due). Core stored the task id on the job at INSERT, so dispatch costs no
query, and calls :meth:`~RQExecutor.submit` from ``transaction.on_commit``
(``supports_defer_on_commit``), so a worker never sees an uncommitted job.

Priority: RQ has no numeric priority. A job with priority > 0 is pushed to the
front of its queue (``at_front``), one with priority <= 0 to the back. Ordering
between queues is the worker's: ``rq worker high default low`` always takes
from the first non-empty queue, so map job types to queues (``JobType.queue``)
for more levels.

RQ bookkeeping: ``result_ttl=0`` (core stores results on the job, so RQ drops a
finished job at once), ``failure_ttl`` a week (an RQ job fails only for the
runner's own infrastructure errors, never for the job's exception), no
``ttl`` (a queued job waits as long as it takes), no retries (core owns them).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from django.utils import timezone
from django.utils.module_loading import import_string
from rq import Queue, SimpleWorker
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus

from task_ferry import PROTOCOL_VERSION
from task_ferry.exceptions import Unsupported
from task_ferry.executors.base import BaseExecutor
from task_ferry.plugins import checked_options
from task_ferry.protocols import Dispatch

OPTIONS = ("URL", "CONNECTION", "DEFAULT_TIMEOUT", "WORKER_CLASS")
DEFAULT_URL = "redis://127.0.0.1:6379/0"
DEFAULT_WORKER_CLASS = "rq.Worker"
#: The job function workers run; a string, so enqueueing imports nothing.
FUNC = "task_ferry_rq.jobs.run_job"
#: RQ's own name for the queue of jobs that name none.
RQ_DEFAULT_QUEUE = "default"
FAILURE_TTL = int(timedelta(days=7).total_seconds())
#: Statuses of an RQ job that has not started: the ones ``revoke`` cancels.
WAITING = frozenset({JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED})


def scheduled_time(run_after: datetime) -> datetime:
    """``run_after`` rounded up to a whole second, in UTC (a naive value is in Django's time zone).

    RQ's scheduled registry scores jobs in whole seconds, truncated, and moves a
    job once its score is <= the current second, truncated: a job due at
    12:00:00.7 would start at 12:00:00.0. Rounding up keeps the start at or after
    ``run_after`` (and at most about a second plus the scheduler's poll later)."""
    if timezone.is_naive(run_after):
        run_after = timezone.make_aware(run_after)
    return datetime.fromtimestamp(math.ceil(run_after.timestamp()), tz=UTC)


class RQExecutor(BaseExecutor):
    protocol_version = PROTOCOL_VERSION
    supports_defer_on_commit = True
    out_of_process = True
    supports_queues = True
    #: Two levels: priority > 0 goes to the front of its queue (see the module docstring).
    supports_priority = True
    #: Through RQ's scheduler: workers must run with ``--with-scheduler``.
    supports_delay = True
    supports_revoke = True
    #: Per instance: False when ``WORKER_CLASS`` is ``rq.SimpleWorker`` or a subclass.
    supports_kill = True

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(checked_options(options, OPTIONS, "rq executor"))
        if "URL" in self.options and "CONNECTION" in self.options:
            raise ValueError("give the rq executor either URL or CONNECTION, not both.")
        self.url = self.options.get("URL", DEFAULT_URL)
        if not isinstance(self.url, str) or "://" not in self.url:
            raise ValueError(f"URL must be a Redis URL such as {DEFAULT_URL!r}, got {self.url!r}.")
        self.connection_option = self.options.get("CONNECTION")
        if self.connection_option is not None and not isinstance(self.connection_option, str | redis.Redis):
            raise ValueError(
                f"CONNECTION must be a redis.Redis client or its dotted path, got {self.connection_option!r}."
            )
        self._connection: redis.Redis | None = None
        if self.connection_option is None:
            try:
                self._connection = redis.Redis.from_url(self.url)  # parses only; nothing connects yet
            except ValueError as exc:
                raise ValueError(f"URL {self.url!r} is not a Redis URL: {exc}") from exc
        timeout = self.options.get("DEFAULT_TIMEOUT")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0):
            raise ValueError(f"DEFAULT_TIMEOUT must be a whole number of seconds > 0, or None, got {timeout!r}.")
        self.job_timeout = -1 if timeout is None else timeout  # RQ's "no limit"
        worker_class = self.options.get("WORKER_CLASS", DEFAULT_WORKER_CLASS)
        try:
            self.worker_class = import_string(worker_class) if isinstance(worker_class, str) else worker_class
        except ImportError as exc:
            raise ValueError(f"WORKER_CLASS {worker_class!r} cannot be imported: {exc}") from exc
        if not isinstance(self.worker_class, type) or not hasattr(self.worker_class, "work"):
            raise ValueError(f"WORKER_CLASS must be an RQ worker class or its dotted path, got {worker_class!r}.")
        self.supports_kill = not issubclass(self.worker_class, SimpleWorker)
        self._queues: dict[str, Queue] = {}

    # ── Redis and queues, built on first use ──────────────────────────────────

    @property
    def connection(self) -> redis.Redis:
        """The Redis client of the queues. A ``CONNECTION`` path is imported on first use;
        nothing connects until the first command."""
        if self._connection is None:
            option = self.connection_option
            client = import_string(option) if isinstance(option, str) else option
            if not isinstance(client, redis.Redis):
                raise TypeError(f"CONNECTION {option!r} is a {type(client).__name__}, not a redis.Redis client")
            self._connection = client
        return self._connection

    def queue(self, name: str) -> Queue:
        """The RQ queue ``name`` on this executor's connection (kept: RQ caches the server version on it)."""
        if name not in self._queues:
            self._queues[name] = Queue(name, connection=self.connection)
        return self._queues[name]

    # ── The protocol ───────────────────────────────────────────────────────────

    def submit(self, dispatch: Dispatch) -> str | None:
        queue = self.queue(dispatch.queue or RQ_DEFAULT_QUEUE)
        options: dict[str, Any] = {
            "args": (dispatch.job_id, dispatch.job_type),
            "job_id": dispatch.task_id,
            "at_front": dispatch.priority > 0,
            "result_ttl": 0,
            "failure_ttl": FAILURE_TTL,
        }
        when = scheduled_time(dispatch.run_after) if dispatch.run_after is not None else None
        # A run_after already past goes straight to the queue: no wait for the scheduler's next poll.
        if when is not None and when > timezone.now():
            queue.enqueue_at(when, FUNC, job_timeout=self.job_timeout, **options)
        else:
            queue.enqueue_call(FUNC, timeout=self.job_timeout, **options)
        return None

    def revoke(self, job_id: int, task_id: str) -> None:
        """Cancel the RQ job if it has not started: it leaves its queue (or the scheduled
        registry) for RQ's canceled registry, and no worker takes it.

        A job a worker already took is left alone; core's claim finds the job row
        cancelled and the body never runs. A job RQ no longer knows (it ran: RQ drops
        finished jobs at once) is nothing to revoke."""
        try:
            job = Job.fetch(task_id, connection=self.connection)
        except NoSuchJobError:
            return
        if job.get_status(refresh=False) in WAITING:
            try:
                job.cancel()
            except InvalidJobOperation:  # cancelled meanwhile
                pass

    def kill(self, job_id: int, task_id: str) -> None:
        """Stop the running attempt: RQ's stop-job command, which makes the worker
        SIGKILL the work horse running it (the RQ job ends ``stopped``). The worker
        then goes on with its next job.

        A job that is not running (not started yet, or already ended) is left alone.
        The job row is left as it is: cancel the job first (``JobHandler.cancel``) to
        record it ``cancelled``; a job killed without a cancel stays ``started``
        until core's reaper ends it."""
        if not self.supports_kill:
            raise Unsupported(
                f"RQExecutor cannot kill running jobs with WORKER_CLASS {self.worker_class.__name__}: it runs jobs "
                f"inside the worker process (supports_kill is False)."
            )
        try:
            send_stop_job_command(self.connection, task_id)
        except (NoSuchJobError, InvalidJobOperation):
            pass  # not running: nothing to stop

    def recover(self, limit: int = 500) -> list[int]:
        """Core's reaper calls this on every pass: dispatch again the ``pending`` jobs an RQ
        worker took and died with before the claim (see :mod:`task_ferry_rq.recovery`);
        return their ids."""
        from .recovery import recover_pending

        return list(recover_pending(self, limit=limit).redispatched)

    def check(self) -> list:
        from django.core.checks import Error

        try:
            connection = self.connection
        except Exception as exc:
            return [
                Error(
                    f"task-ferry's rq executor cannot use CONNECTION {self.connection_option!r}: "
                    f"{type(exc).__name__}: {exc}",
                    hint='Set TASK_FERRY["EXECUTOR"]["OPTIONS"]["CONNECTION"] to the dotted path of a redis.Redis '
                    'client, or use "URL" instead.',
                    id="task_ferry_rq.E001",
                )
            ]
        if connection.get_encoder().decode_responses:
            return [
                Error(
                    "task-ferry's rq executor has a Redis client with decode_responses=True; RQ needs raw bytes.",
                    hint="Give the executor a client made without decode_responses.",
                    id="task_ferry_rq.E002",
                )
            ]
        return []
