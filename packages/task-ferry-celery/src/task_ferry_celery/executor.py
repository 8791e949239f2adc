"""The ``celery`` executor: jobs run as the Celery task ``task_ferry.run_job``.

Settings::

    INSTALLED_APPS = [..., "task_ferry", "task_ferry_celery"]
    TASK_FERRY = {
        "EXECUTOR": {"BACKEND": "celery", "OPTIONS": {"APP": "proj.celery:app"}},
    }

OPTIONS (all optional):

``APP``
    The Celery app: a dotted path (``"proj.celery:app"`` or ``"proj.celery.app"``)
    or the app object. Default ``"celery.current_app"``, which is the project's
    app once ``proj/__init__.py`` imports it (Celery's Django layout).
``KILL_GRACE``
    Seconds :meth:`CeleryExecutor.kill` waits after SIGTERM before SIGKILL (10).
``POOL``
    The workers' pool (``--pool``), default ``"prefork"``. Only prefork runs each
    task in a process of its own that can be signalled, so ``supports_kill`` is
    True for ``prefork`` alone.

What is sent: ``app.send_task("task_ferry.run_job", args=[job_id, job_type],
task_id=dispatch.task_id, queue=..., priority=..., eta=...)``. Core stored the
task id on the job at INSERT, so dispatch costs no query. Core calls
:meth:`~CeleryExecutor.submit` from ``transaction.on_commit``
(``supports_defer_on_commit``), so a worker never sees an uncommitted job.

Priority: core's -100..100 (higher sooner) maps onto Celery's ten levels with
:func:`priority_level` (``-100..-80`` -> 0 ... ``81..100`` -> 9), then onto the
broker's order: RabbitMQ (and every non-Redis transport) serves a higher number
first, kombu's Redis transport a lower one, so for Redis the level is sent as
``9 - level``. See the README for the broker settings priorities need.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from task_ferry import PROTOCOL_VERSION
from task_ferry.exceptions import Unsupported
from task_ferry.executors.base import BaseExecutor
from task_ferry.plugins import checked_options
from task_ferry.protocols import Dispatch

from .tasks import KILL_COMMAND, TASK_NAME

OPTIONS = ("APP", "KILL_GRACE", "POOL")
DEFAULT_APP = "celery.current_app"
DEFAULT_KILL_GRACE = 10.0
#: Pools whose running task can be signalled: each task runs in a child process.
KILLABLE_POOLS = frozenset({"prefork", "processes"})
#: kombu transports that serve priority 0 first (the others serve the highest number first).
LOWER_IS_SOONER = frozenset({"redis"})


def priority_level(priority: int) -> int:
    """Core's priority (-100..100, higher sooner) as one of Celery's ten levels, 0..9, higher sooner.

    Equal bands of about 20: -100..-80 -> 0, -79..-60 -> 1, ..., -19..0 -> 4,
    1..20 -> 5, ..., 81..100 -> 9."""
    return (priority + 100) * 10 // 201


class CeleryExecutor(BaseExecutor):
    protocol_version = PROTOCOL_VERSION
    supports_defer_on_commit = True
    out_of_process = True
    supports_queues = True
    supports_priority = True
    supports_delay = True
    supports_revoke = True
    #: Per instance: True with ``POOL`` ``"prefork"`` (the default), False otherwise.
    supports_kill = True

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(checked_options(options, OPTIONS, "celery executor"))
        self.app_option = self.options.get("APP", DEFAULT_APP)
        if not isinstance(self.app_option, str) and not hasattr(self.app_option, "send_task"):
            raise ValueError(f"APP must be a dotted path to a Celery app or the app itself, got {self.app_option!r}.")
        grace = self.options.get("KILL_GRACE", DEFAULT_KILL_GRACE)
        if isinstance(grace, bool) or not isinstance(grace, int | float) or grace < 0:
            raise ValueError(f"KILL_GRACE must be a number of seconds >= 0, got {grace!r}.")
        self.kill_grace = float(grace)
        self.pool = self.options.get("POOL", "prefork")
        if not isinstance(self.pool, str) or not self.pool:
            raise ValueError(f"POOL must be the name of the workers' Celery pool, got {self.pool!r}.")
        self.supports_kill = self.pool in KILLABLE_POOLS
        self._app = None
        self._lower_is_sooner: bool | None = None

    # ── The Celery app, resolved on first use ─────────────────────────────────

    @property
    def app(self):
        """The Celery app jobs are sent through (imported on first use, then kept)."""
        if self._app is None:
            self._app = _resolve_app(self.app_option)
        return self._app

    def celery_priority(self, priority: int) -> int:
        """The message priority Celery is given for core's ``priority`` on this app's broker."""
        if self._lower_is_sooner is None:
            # Builds the transport object only; nothing connects.
            with self.app.connection_for_write() as conn:
                self._lower_is_sooner = conn.transport.driver_type in LOWER_IS_SOONER
        level = priority_level(priority)
        return 9 - level if self._lower_is_sooner else level

    # ── The protocol ───────────────────────────────────────────────────────────

    def submit(self, dispatch: Dispatch) -> str | None:
        options: dict[str, Any] = {"priority": self.celery_priority(dispatch.priority)}
        if dispatch.queue:
            options["queue"] = dispatch.queue  # else Celery's own routing (task_routes, task_default_queue)
        if dispatch.run_after is not None:
            eta = dispatch.run_after
            options["eta"] = timezone.make_aware(eta) if timezone.is_naive(eta) else eta
        self.app.send_task(
            TASK_NAME,
            args=[dispatch.job_id, dispatch.job_type],
            task_id=dispatch.task_id,
            add_to_parent=False,
            **options,
        )
        return None

    def revoke(self, job_id: int, task_id: str) -> None:
        """Tell every worker to drop the task. Workers keep the id in memory (persisted
        with ``--statedb``); a worker started later may still receive the message, and
        then core's claim finds the job cancelled and skips it."""
        self.app.control.revoke(task_id)

    def kill(self, job_id: int, task_id: str) -> None:
        """SIGTERM the pool process running the task, SIGKILL it ``KILL_GRACE`` seconds
        later if it is still running that task.

        Sent as the worker control command ``task_ferry_kill`` (registered by
        :mod:`task_ferry_celery.tasks`); the escalation runs on the worker's own timer,
        so it happens whether or not the calling process is still alive. Celery's
        ``revoke(terminate=True)`` cannot escalate: it forgets the task as soon as the
        first signal is sent. The job row is left as it is: cancel the job first
        (``JobHandler.cancel``) to record it ``cancelled``; a job killed without a
        cancel stays ``started``."""
        if not self.supports_kill:
            raise Unsupported(
                f"CeleryExecutor cannot kill running jobs with POOL={self.pool!r}: only the prefork pool runs each "
                f"task in a process of its own (supports_kill is False)."
            )
        self.app.control.broadcast(KILL_COMMAND, arguments={"task_id": task_id, "grace": self.kill_grace})

    def check(self) -> list:
        from django.apps import apps
        from django.core.checks import Error, Warning

        try:
            app = self.app
        except Exception as exc:
            return [
                Error(
                    f"task-ferry's celery executor cannot import its Celery app {self.app_option!r}: "
                    f"{type(exc).__name__}: {exc}",
                    hint='Set TASK_FERRY["EXECUTOR"]["OPTIONS"]["APP"] to the dotted path of your app, '
                    'e.g. "proj.celery:app".',
                    id="task_ferry_celery.E001",
                )
            ]
        messages = []
        if not app.conf.broker_url and not app.conf.broker_write_url:
            messages.append(
                Warning(
                    f"The Celery app {app.main or app!r} has no broker_url: jobs would go to Celery's default "
                    f"amqp://guest@localhost//.",
                    hint="Configure the broker (CELERY_BROKER_URL with config_from_object('django.conf:settings', "
                    "namespace='CELERY')), and make sure the app is imported at start-up (proj/__init__.py), "
                    'or name it in OPTIONS["APP"].',
                    id="task_ferry_celery.W001",
                )
            )
        if not apps.is_installed("task_ferry_celery"):
            messages.append(
                Warning(
                    "task_ferry_celery is not in INSTALLED_APPS: Celery workers will not know the task "
                    f"{TASK_NAME!r} and will drop every job sent to them.",
                    hint='Add "task_ferry_celery" to INSTALLED_APPS.',
                    id="task_ferry_celery.W002",
                )
            )
        return messages


def _resolve_app(option: Any):
    if not isinstance(option, str):
        return option
    from kombu.utils.imports import symbol_by_name

    app = symbol_by_name(option)
    if not hasattr(app, "send_task"):
        raise TypeError(f"{option!r} is a {type(app).__name__}, not a Celery app")
    return app
