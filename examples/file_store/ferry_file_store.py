"""``file``: a task-ferry progress store that keeps each running job's progress
in a small JSON file, in a directory every process of the deployment can read.

The worked example of a third-party progress store (see
``docs/writing-plugins.md`` in the task-ferry repository): the whole contract
of :class:`task_ferry.protocols.ProgressStore`, proven by the conformance kit
in ``tests/test_conformance.py``. Fits a single machine (or a shared volume)
without Redis; ``database`` or ``redis`` are the stores for production.

Settings::

    TASK_FERRY = {"PROGRESS_STORE": {"BACKEND": "file", "OPTIONS": {"DIRECTORY": "/run/myproject/ferry"}}}

OPTIONS: ``DIRECTORY`` (required, absolute; created on first write),
``TIMEOUT`` (seconds after its last write a snapshot is ignored; core passes
``PROGRESS_CACHE_TIMEOUT``, 3600).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from django.core.checks import Error

from task_ferry import PROTOCOL_VERSION
from task_ferry.exceptions import Unsupported
from task_ferry.plugins import checked_options
from task_ferry.protocols import Snapshot

OPTIONS = ("DIRECTORY", "TIMEOUT")


class FileProgressStore:
    protocol_version = PROTOCOL_VERSION
    #: Every process that sees DIRECTORY sees the same files.
    supports_cross_process = True
    #: Files are outside the database: progress shows while the job's transaction is open.
    supports_mid_transaction = True
    #: No way to be told about a new file without polling: readers poll read_many().
    supports_subscribe = False

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        options = checked_options(options, OPTIONS, "file store")
        directory = options.get("DIRECTORY")
        if not isinstance(directory, str | os.PathLike) or not os.path.isabs(directory):
            raise ValueError(f"DIRECTORY must be an absolute path to a directory, got {directory!r}.")
        timeout = options.get("TIMEOUT", 3600)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ValueError(f"TIMEOUT must be a positive number of seconds, got {timeout!r}.")
        self.directory = Path(directory)
        self.timeout = float(timeout)

    def _path(self, job_id: int, kind: str) -> Path:
        return self.directory / f"{int(job_id)}.{kind}"

    def write(self, snapshot: Snapshot) -> bool:
        data = {
            "state": snapshot.state,
            "percentage": snapshot.percentage,
            "label": snapshot.label,
            "updated_at": snapshot.updated_at,
        }
        self.directory.mkdir(parents=True, exist_ok=True)
        # Write aside, then rename: a reader sees the old snapshot or the new one, never half of one.
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".write-")
        with os.fdopen(fd, "w") as out:
            json.dump(data, out)
        os.replace(tmp, self._path(snapshot.job_id, "progress"))
        return self._path(snapshot.job_id, "cancel").exists()

    def read_many(self, job_ids: Iterable[int]) -> dict[int, Snapshot]:
        oldest = time.time() - self.timeout
        out = {}
        for job_id in job_ids:
            try:
                data = json.loads(self._path(job_id, "progress").read_text())
            except (FileNotFoundError, ValueError):
                data = None
            if data is not None and data["updated_at"] < oldest:
                data = None  # a worker killed mid-job left it behind
            cancel = self._path(job_id, "cancel").exists()
            if data is None and not cancel:
                continue
            data = data or {"state": "started", "percentage": 0, "label": "", "updated_at": 0.0}
            out[job_id] = Snapshot(job_id, data["state"], data["percentage"], data["label"], data["updated_at"], cancel)
        return out

    def request_cancel(self, job_id: int) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._path(job_id, "cancel").touch()

    def clear(self, job_id: int, final: Snapshot | None = None) -> None:
        # `final` is for stores with subscribers; this one has none.
        for kind in ("progress", "cancel"):
            self._path(job_id, kind).unlink(missing_ok=True)

    def subscribe(self, job_id: int, timeout: float) -> Iterator[Snapshot]:
        raise Unsupported("the file store has no live channel (supports_subscribe is False); poll read_many().")

    def check(self) -> list:
        """Reported by `manage.py check`: a directory this process cannot create or write to."""
        existing = next(p for p in (self.directory, *self.directory.parents) if p.exists())
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            return [
                Error(
                    f"The file progress store cannot write to {self.directory}.",
                    hint='Set TASK_FERRY["PROGRESS_STORE"]["OPTIONS"]["DIRECTORY"] to a directory every worker '
                    "and web process can write to.",
                    id="ferry_file_store.E001",
                )
            ]
        return []
