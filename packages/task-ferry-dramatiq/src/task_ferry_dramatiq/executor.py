"""The ``dramatiq`` executor: jobs run as the Dramatiq actor ``task_ferry_run_job``.

Settings::

    TASK_FERRY = {
        "EXECUTOR": {"BACKEND": "dramatiq", "OPTIONS": {"BROKER": "proj.dramatiq:broker"}},
    }

OPTIONS (all optional):

``BROKER``
    The project's broker: a dotted path (``"proj.dramatiq:broker"`` or
    ``"proj.dramatiq.broker"``) to a ``dramatiq.Broker`` instance, or the instance.
    Default None: ``dramatiq.get_broker()``, the global broker the project set with
    ``dramatiq.set_broker()``. The executor never makes a broker of its own; with
    neither set, ``get_broker()`` makes Dramatiq's default (RabbitMQ on
    127.0.0.1:5672), which the check ``task_ferry_dramatiq.W001`` warns about.

What is sent: a message to :data:`~task_ferry_dramatiq.actor.ACTOR_NAME` with
``args=(job_id, job_type)``, ``message_id=dispatch.task_id`` (core stored it on
the job at INSERT, so dispatch costs no query), ``queue_name=dispatch.queue``,
``delay=`` the milliseconds until ``run_after``, and on RabbitMQ with
``max_priority`` the ``broker_priority`` of :func:`broker_priority`. Core calls
:meth:`~DramatiqExecutor.submit` from ``transaction.on_commit``
(``supports_defer_on_commit``), so a worker never sees an uncommitted job.

Not supported, and declared so: ``revoke`` (Dramatiq cannot drop a queued
message; a cancelled job's message is delivered and core's claim skips it, so
the body never runs) and ``kill`` (Dramatiq runs actors in threads of a shared
process; see the README for what a ``TimeLimit``/dramatiq-abort style interrupt
could do later).
"""

from __future__ import annotations

import math
import re
import time
from importlib import import_module
from typing import Any

import dramatiq
from django.utils import timezone

from task_ferry import PROTOCOL_VERSION
from task_ferry.executors.base import BaseExecutor
from task_ferry.plugins import checked_options
from task_ferry.protocols import Dispatch

from .actor import declare_actor

OPTIONS = ("BROKER",)
#: Dramatiq's rule for queue names (``dramatiq.actor``); ``.DQ`` / ``.XQ`` name its delay and dead-letter queues.
QUEUE_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9._-]*")


def broker_priority(priority: int, max_priority: int) -> int:
    """Core's priority (-100..100, higher sooner) as a RabbitMQ message priority, 0..``max_priority``
    (higher sooner), in equal bands: with ``max_priority=10``, -100..-82 -> 0, ..., -8..9 -> 5, ..., 83..100 -> 10."""
    priority = max(-100, min(100, int(priority)))
    return (priority + 100) * (max_priority + 1) // 201


def resolve_broker(option: Any):
    """The broker an executor's ``BROKER`` option names (None: ``dramatiq.get_broker()``)."""
    if option is None:
        return dramatiq.get_broker()
    if isinstance(option, dramatiq.Broker):
        return option
    module_path, sep, attr = option.partition(":")
    if not sep:
        module_path, _, attr = option.rpartition(".")
    if not module_path or not attr:
        raise ImportError(f"{option!r} is not a dotted path such as 'proj.dramatiq:broker'")
    target: Any = import_module(module_path)
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ImportError(f"module {module_path!r} has no attribute {attr!r}") from None
    if not isinstance(target, dramatiq.Broker):
        raise TypeError(f"{option!r} is a {type(target).__name__}, not a dramatiq.Broker")
    return target


def max_priority(broker) -> int | None:
    """The ``x-max-priority`` of ``broker``'s queues if it orders messages by priority, else None.

    Only ``RabbitmqBroker(max_priority=N)`` does: the Redis broker keeps one FIFO list per queue."""
    try:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker
    except ImportError:  # pika is not installed, so this cannot be a RabbitMQ broker
        return None
    if isinstance(broker, RabbitmqBroker) and broker.max_priority:
        return int(broker.max_priority)
    return None


def delay_ms(run_after) -> int | None:
    """Dramatiq's ``delay`` for ``run_after``: milliseconds from now, or None if it has passed.

    Dramatiq sets the message's ``eta`` to its own whole-millisecond clock plus the delay;
    counting on the same clock, rounded up, makes that ``eta`` never earlier than ``run_after``."""
    if run_after is None:
        return None
    if timezone.is_naive(run_after):
        run_after = timezone.make_aware(run_after)
    ms = math.ceil(run_after.timestamp() * 1000) - int(time.time() * 1000)
    return ms if ms > 0 else None


class DramatiqExecutor(BaseExecutor):
    protocol_version = PROTOCOL_VERSION
    supports_defer_on_commit = True
    out_of_process = True
    supports_queues = True
    supports_delay = True
    #: Dramatiq cannot drop a queued message. A cancelled pending job still never runs:
    #: its message is delivered and core's claim (a compare-and-set from ``pending``) skips it.
    supports_revoke = False
    #: Actors run in threads of a shared worker process; nothing stops one attempt alone.
    supports_kill = False

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(checked_options(options, OPTIONS, "dramatiq executor"))
        self.broker_option = self.options.get("BROKER")
        valid = self.broker_option is None or isinstance(self.broker_option, dramatiq.Broker)
        if not valid and not (isinstance(self.broker_option, str) and self.broker_option.strip()):
            raise ValueError(
                f"BROKER must be a dotted path to a dramatiq.Broker ('proj.dramatiq:broker'), the broker itself, "
                f"or None for dramatiq.get_broker(); got {self.broker_option!r}."
            )
        self._broker = None

    @property
    def broker(self):
        """The project's broker (resolved on first use, then kept)."""
        if self._broker is None:
            self._broker = resolve_broker(self.broker_option)
        return self._broker

    @property
    def supports_priority(self) -> bool:
        """True only on a RabbitMQ broker made with ``max_priority``: nothing else orders delivery."""
        return max_priority(self.broker) is not None

    @property
    def actor(self):
        """The ``task_ferry_run_job`` actor on :attr:`broker`, declared on first use."""
        return declare_actor(self.broker)

    # ── The protocol ───────────────────────────────────────────────────────────

    def submit(self, dispatch: Dispatch) -> str | None:
        actor = self.actor
        queue = dispatch.queue or actor.queue_name
        if not QUEUE_NAME.fullmatch(queue) or queue.endswith((".DQ", ".XQ")):
            raise ValueError(
                f"{queue!r} is not a Dramatiq queue name: a letter or underscore, then letters, digits, '.', '-' "
                f"or '_', not ending in .DQ or .XQ."
            )
        options: dict[str, Any] = {}
        levels = max_priority(self.broker)
        if levels is not None:
            options["broker_priority"] = broker_priority(dispatch.priority, levels)
        message = actor.message_with_options(args=(dispatch.job_id, dispatch.job_type), **options).copy(
            queue_name=queue, message_id=dispatch.task_id
        )
        self.broker.enqueue(message, delay=delay_ms(dispatch.run_after))
        return None

    def check(self) -> list:
        from django.core.checks import Error, Warning

        if self.broker_option is None:
            if dramatiq.broker.global_broker is None:
                return [
                    Warning(
                        "task-ferry's dramatiq executor uses dramatiq.get_broker(), but no broker has been set: "
                        "Dramatiq would make its default one (RabbitMQ on 127.0.0.1:5672).",
                        hint="Call dramatiq.set_broker(...) where your project configures Dramatiq (imported at "
                        'start-up), or name your broker in TASK_FERRY["EXECUTOR"]["OPTIONS"]["BROKER"], e.g. '
                        '"proj.dramatiq:broker".',
                        id="task_ferry_dramatiq.W001",
                    )
                ]
            return []
        try:
            self.broker  # noqa: B018 - resolving imports the project's module; no broker connects on creation
        except Exception as exc:
            return [
                Error(
                    f"task-ferry's dramatiq executor cannot load its broker {self.broker_option!r}: "
                    f"{type(exc).__name__}: {exc}",
                    hint='Set TASK_FERRY["EXECUTOR"]["OPTIONS"]["BROKER"] to the dotted path of your '
                    'dramatiq.Broker, e.g. "proj.dramatiq:broker".',
                    id="task_ferry_dramatiq.E001",
                )
            ]
        return []
