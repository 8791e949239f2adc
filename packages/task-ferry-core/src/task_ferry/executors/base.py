"""A convenience base for executors (the contract is ``task_ferry.protocols.Executor``).

Subclassing is optional: any class with the protocol's methods and flags works.
The base declares every optional capability unsupported, so a subclass only
sets the flags it honours. It also keeps 0.1.1 executors working: a subclass
that only implements ``enqueue(job_id, queue=None)`` is dispatched through it.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

from .. import PROTOCOL_VERSION
from ..exceptions import Unsupported
from ..protocols import Dispatch


class BaseExecutor:
    protocol_version: ClassVar[int] = PROTOCOL_VERSION
    supports_defer_on_commit: ClassVar[bool] = False
    out_of_process: ClassVar[bool] = True
    supports_queues: ClassVar[bool] = False
    supports_priority: ClassVar[bool] = False
    supports_delay: ClassVar[bool] = False
    supports_revoke: ClassVar[bool] = False
    supports_kill: ClassVar[bool] = False

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.options = dict(options or {})

    def submit(self, dispatch: Dispatch) -> str | None:
        # 0.1.1 executors implement enqueue(job_id, queue=None) instead.
        self.enqueue(dispatch.job_id, queue=dispatch.queue)
        return None

    def enqueue(self, job_id: int, queue: str | None = None) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement submit(dispatch).")

    def revoke(self, job_id: int, task_id: str) -> None:
        raise Unsupported(f"{type(self).__name__} cannot revoke queued jobs (supports_revoke is False).")

    def kill(self, job_id: int, task_id: str) -> None:
        raise Unsupported(f"{type(self).__name__} cannot kill running jobs (supports_kill is False).")

    def check(self) -> list:
        return []


class _LegacyExecutorAdapter(BaseExecutor):
    """Wraps a 0.1.1-style executor that has ``enqueue`` but not the protocol."""

    def __init__(self, wrapped: Any) -> None:
        super().__init__({})
        self.wrapped = wrapped

    def submit(self, dispatch: Dispatch) -> str | None:
        self.wrapped.enqueue(dispatch.job_id, queue=dispatch.queue)
        return None


def instantiate(cls: type, options: dict[str, Any]) -> Any:
    """Build a plugin from its class and OPTIONS, accepting 0.1.1's no-argument executors."""
    try:
        params = [
            p
            for p in inspect.signature(cls).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        params = [None]
    if params:
        instance = cls(options)
    elif options:
        raise TypeError(f"{cls.__name__} takes no OPTIONS, but OPTIONS were given: {sorted(options)}.")
    else:
        instance = cls()
    if not hasattr(instance, "submit") and hasattr(instance, "enqueue"):
        return _LegacyExecutorAdapter(instance)
    return instance
