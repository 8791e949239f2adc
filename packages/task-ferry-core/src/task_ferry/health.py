"""Reporting progress-store outages once per outage, not once per flush or read."""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger("task_ferry.runner")


class StoreHealth:
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
        if name not in self._down:  # the common case: a set lookup, no lock
            return
        with self._lock:
            if name not in self._down:
                return
            self._down.discard(name)
        logger.warning("task-ferry: progress store %s is reachable again.", name)


store_health = StoreHealth()
