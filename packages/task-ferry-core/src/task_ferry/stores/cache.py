"""The ``cache`` progress store: Django's cache framework.

Works with any cache backend; visible across processes when the backend is
(Redis, Memcached, database or file caches; not LocMemCache or DummyCache, which
the system check ``task_ferry.W004`` reports with an out-of-process executor).
A flush is two cache calls (set the snapshot, get the cancel flag): the cache
API has no combined call. The ``redis`` store (task-ferry-redis) does it in one.

OPTIONS: ``CACHE_ALIAS`` (default ``"default"``), ``TIMEOUT`` (seconds a
snapshot lives; default the ``PROGRESS_CACHE_TIMEOUT`` setting).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache

from .. import PROTOCOL_VERSION
from ..exceptions import Unsupported
from ..plugins import checked_options
from ..protocols import Snapshot


def _key(job_id: int) -> str:
    # The key 0.1.1 used, so a mixed deployment during an upgrade reads the same entries.
    return f"task_ferry:job:{job_id}:progress"


def _cancel_key(job_id: int) -> str:
    return f"task_ferry:job:{job_id}:cancel"


class CacheProgressStore:
    protocol_version = PROTOCOL_VERSION
    supports_mid_transaction = True
    supports_subscribe = False

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        options = checked_options(options, ("CACHE_ALIAS", "TIMEOUT"), "cache store")
        self.alias = options.get("CACHE_ALIAS", "default")
        self.timeout = options.get("TIMEOUT", 3600)
        if not isinstance(self.timeout, int | float) or self.timeout <= 0:
            raise ValueError(f"TIMEOUT must be a positive number of seconds, got {self.timeout!r}.")

    @property
    def cache(self):
        return caches[self.alias]

    @property
    def supports_cross_process(self) -> bool:
        return not isinstance(self.cache, LocMemCache | DummyCache)

    def write(self, snapshot: Snapshot) -> bool:
        cache = self.cache
        cache.set(
            _key(snapshot.job_id),
            {
                "state": snapshot.state,
                "progress_percentage": snapshot.percentage,
                "progress_state": snapshot.label,
                "updated_at": snapshot.updated_at,
            },
            timeout=self.timeout,
        )
        return bool(cache.get(_cancel_key(snapshot.job_id)))

    def read_many(self, job_ids: Iterable[int]) -> dict[int, Snapshot]:
        ids = list(job_ids)
        if not ids:
            return {}
        keys = [_key(i) for i in ids] + [_cancel_key(i) for i in ids]
        found = self.cache.get_many(keys)
        out = {}
        for job_id in ids:
            data = found.get(_key(job_id))
            cancel = bool(found.get(_cancel_key(job_id)))
            if data is None and not cancel:
                continue
            data = data or {}
            updated = data.get("updated_at", 0.0)
            out[job_id] = Snapshot(
                job_id,
                data.get("state", "started"),
                int(data.get("progress_percentage", 0)),
                data.get("progress_state", ""),
                updated if isinstance(updated, float | int) else 0.0,
                cancel,
            )
        return out

    def request_cancel(self, job_id: int) -> None:
        self.cache.set(_cancel_key(job_id), 1, timeout=self.timeout)

    def clear(self, job_id: int, final: Snapshot | None = None) -> None:
        self.cache.delete_many([_key(job_id), _cancel_key(job_id)])

    def subscribe(self, job_id: int, timeout: float) -> Iterator[Snapshot]:
        raise Unsupported(
            "the cache progress store has no live channel (supports_subscribe is False); poll read_many()."
        )

    def check(self) -> list:
        from django.conf import settings
        from django.core.checks import Error

        if self.alias not in settings.CACHES:
            return [
                Error(
                    f"The cache progress store uses CACHES[{self.alias!r}], which is not configured.",
                    hint=f'Add {self.alias!r} to CACHES or set TASK_FERRY["PROGRESS_STORE"]["OPTIONS"]["CACHE_ALIAS"].',
                    id="task_ferry.E007",
                )
            ]
        if isinstance(self.cache, DummyCache):
            return [
                Error(
                    "The cache progress store is on DummyCache, which stores nothing: progress and cancel "
                    "requests would be lost.",
                    hint='Use a real cache (Redis, Memcached, database) or TASK_FERRY["PROGRESS_STORE"] = "database".',
                    id="task_ferry.E008",
                )
            ]
        return []
