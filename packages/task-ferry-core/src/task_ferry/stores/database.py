"""The ``database`` progress store: a row per running job in ``task_ferry_progress``.

The default store: it needs nothing beyond the project's database and is
visible to every process. It writes through a connection of its own in
autocommit mode, so on PostgreSQL (and other databases with row locking)
progress is visible while the job's own transaction is still open. SQLite has
one writer at a time: while the job's connection holds an open transaction the
store only reads the cancel flag, and the next flush outside it writes again
(``supports_mid_transaction`` is False there).

A flush is one statement (``INSERT ... ON CONFLICT ... RETURNING``) on
PostgreSQL and SQLite >= 3.35; two elsewhere. The same statement reads the
job row's state, so a job recorded ``cancelled`` stops at its next flush even
if the cancel flag could not be written.

OPTIONS: ``DATABASE`` (alias, default ``"default"``), ``SQLITE_TIMEOUT``
(seconds to wait for SQLite's write lock, default 0.2).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any

from django.db import connections

from .. import PROTOCOL_VERSION
from ..exceptions import Unsupported
from ..plugins import checked_options
from ..protocols import Snapshot

TABLE = "task_ferry_progress"
_COLUMNS = "job_id, state, percentage, label, cancel_requested, updated_at"
_JOB_CANCELLED = "EXISTS (SELECT 1 FROM task_ferry_job WHERE id = %s AND state = 'cancelled')"


class DatabaseProgressStore:
    protocol_version = PROTOCOL_VERSION
    supports_cross_process = True
    supports_subscribe = False

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        options = dict(options or {})
        # Core hands every store TIMEOUT (PROGRESS_CACHE_TIMEOUT); rows here end with their job instead.
        options.pop("TIMEOUT", None)
        options = checked_options(options, ("DATABASE", "SQLITE_TIMEOUT"), "database store")
        self.alias = options.get("DATABASE", "default")
        self.sqlite_timeout = float(options.get("SQLITE_TIMEOUT", 0.2))
        self._local = threading.local()
        self._opened: list = []  # every thread's connection, so close() reaches them all
        self._lock = threading.Lock()

    # ── Connection ─────────────────────────────────────────────────────────────

    @property
    def vendor(self) -> str:
        return connections[self.alias].vendor

    @property
    def supports_mid_transaction(self) -> bool:
        return self.vendor != "sqlite"

    def _connection(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            main = connections[self.alias]
            settings_dict = {**main.settings_dict, "OPTIONS": dict(main.settings_dict.get("OPTIONS", {}))}
            if main.vendor == "sqlite":
                settings_dict["OPTIONS"]["timeout"] = self.sqlite_timeout
            conn = type(main)(settings_dict, self.alias)
            # Closed from whichever thread calls close() (test teardown, settings change).
            conn.inc_thread_sharing()
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        return conn

    def _execute(self, sql: str, params: list, fetch: bool = False) -> list:
        conn = self._connection()
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall() if fetch else []
        except Exception:
            # Drop a broken connection; the next call opens a new one.
            conn.close()
            self._local.conn = None
            with self._lock:
                if conn in self._opened:
                    self._opened.remove(conn)
            raise

    def _upsert_supported(self) -> bool:
        conn = connections[self.alias]
        if conn.vendor == "postgresql":
            return True
        if conn.vendor == "sqlite":
            import sqlite3

            return sqlite3.sqlite_version_info >= (3, 35)
        return False

    def _sqlite_main_busy(self) -> bool:
        main = connections[self.alias]
        return main.vendor == "sqlite" and main.in_atomic_block

    def close(self) -> None:
        """Close every connection this store opened, in any thread."""
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()
        self._local = threading.local()

    # ── Protocol ───────────────────────────────────────────────────────────────

    def write(self, snapshot: Snapshot) -> bool:
        params = [
            snapshot.job_id,
            snapshot.state,
            snapshot.percentage,
            snapshot.label[:255],
            False,
            snapshot.updated_at,
        ]
        if self._sqlite_main_busy():
            # SQLite: our own open transaction holds the write lock; only read the flags.
            rows = self._execute(
                f"SELECT (SELECT cancel_requested FROM {TABLE} WHERE job_id = %s), {_JOB_CANCELLED}",
                [snapshot.job_id, snapshot.job_id],
                True,
            )
            return bool(rows and (rows[0][0] or rows[0][1]))
        if self._upsert_supported():
            # The job row is the authority on cancellation: reading it in the same
            # statement stops the job even if the cancel flag itself was never written.
            rows = self._execute(
                f"INSERT INTO {TABLE} ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s) "
                f"ON CONFLICT (job_id) DO UPDATE SET state = excluded.state, percentage = excluded.percentage, "
                f"label = excluded.label, updated_at = excluded.updated_at "
                f"RETURNING cancel_requested, {_JOB_CANCELLED}",
                [*params, snapshot.job_id],
                True,
            )
            return bool(rows and (rows[0][0] or rows[0][1]))
        self._execute(
            f"UPDATE {TABLE} SET state = %s, percentage = %s, label = %s, updated_at = %s WHERE job_id = %s",
            [snapshot.state, snapshot.percentage, snapshot.label[:255], snapshot.updated_at, snapshot.job_id],
        )
        rows = self._execute(
            f"SELECT cancel_requested, {_JOB_CANCELLED} FROM {TABLE} WHERE job_id = %s",
            [snapshot.job_id, snapshot.job_id],
            True,
        )
        if not rows:
            self._execute(f"INSERT INTO {TABLE} ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)", params)
            return bool(self._execute(f"SELECT {_JOB_CANCELLED}", [snapshot.job_id], True)[0][0])
        return bool(rows[0][0] or rows[0][1])

    def read_many(self, job_ids: Iterable[int]) -> dict[int, Snapshot]:
        ids = [int(i) for i in job_ids]
        if not ids:
            return {}
        out: dict[int, Snapshot] = {}
        # SQLite limits bound parameters; stay well under it.
        for start in range(0, len(ids), 900):
            chunk = ids[start : start + 900]
            marks = ", ".join(["%s"] * len(chunk))
            for job_id, state, pct, label, cancel, updated in self._execute(
                f"SELECT {_COLUMNS} FROM {TABLE} WHERE job_id IN ({marks})", chunk, True
            ):
                out[job_id] = Snapshot(job_id, state, int(pct), label, float(updated), bool(cancel))
        return out

    def request_cancel(self, job_id: int) -> None:
        if self._upsert_supported():
            self._execute(
                f"INSERT INTO {TABLE} ({_COLUMNS}) VALUES (%s, 'started', 0, '', %s, 0) "
                f"ON CONFLICT (job_id) DO UPDATE SET cancel_requested = excluded.cancel_requested",
                [job_id, True],
            )
            return
        self._execute(f"UPDATE {TABLE} SET cancel_requested = %s WHERE job_id = %s", [True, job_id])
        if not self._execute(f"SELECT 1 FROM {TABLE} WHERE job_id = %s", [job_id], True):
            self._execute(f"INSERT INTO {TABLE} ({_COLUMNS}) VALUES (%s, 'started', 0, '', %s, 0)", [job_id, True])

    def clear(self, job_id: int, final: Snapshot | None = None) -> None:
        if self._sqlite_main_busy() and not self._execute(f"SELECT 1 FROM {TABLE} WHERE job_id = %s", [job_id], True):
            return  # nothing to delete, and a DELETE would wait for our own transaction's lock
        self._execute(f"DELETE FROM {TABLE} WHERE job_id = %s", [job_id])

    def subscribe(self, job_id: int, timeout: float) -> Iterator[Snapshot]:
        raise Unsupported(
            "the database progress store has no live channel (supports_subscribe is False); poll read_many()."
        )

    def check(self) -> list:
        from django.conf import settings
        from django.core.checks import Error

        if self.alias not in settings.DATABASES:
            return [
                Error(
                    f"The database progress store uses DATABASES[{self.alias!r}], which is not configured.",
                    hint='Set TASK_FERRY["PROGRESS_STORE"]["OPTIONS"]["DATABASE"] to a configured alias.',
                    id="task_ferry.E009",
                )
            ]
        return []
