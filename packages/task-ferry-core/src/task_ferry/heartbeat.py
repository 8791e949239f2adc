"""Heartbeats of running jobs: ``Job.heartbeat_at``, read by the reaper.

A running attempt's heartbeat is written:

* by the claim (``run_job`` sets it when the job starts);
* on a progress flush, at most once per ``HEARTBEAT_INTERVAL`` (one UPDATE of
  the job row, through the job's own connection, skipped while that connection
  is inside a transaction: a row lock held until the job's transaction ends
  would block cancels and the reaper);
* by one daemon thread per process for every attempt whose last beat is older
  than 1.5 ``HEARTBEAT_INTERVAL`` (jobs that do not report progress, or report
  it from inside a transaction; the half interval leaves flushing jobs to their
  flushes): one UPDATE per round for all of them, through the thread's own
  connection, which it closes whenever no job is running.

Every beat is guarded by ``state = 'started' AND attempts = <this attempt>``,
so a worker that was given up on (and whose job moved on to a new attempt,
perhaps on another worker) never keeps that attempt alive. A flush whose beat
finds the attempt gone tells the runner, which stops the body.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from functools import reduce
from operator import or_

from django.db import connections
from django.db.models import Q
from django.utils import timezone

from .states import JOB_STARTED

logger = logging.getLogger("task_ferry.heartbeat")


class Beat:
    """The heartbeat of one running attempt."""

    __slots__ = ("alias", "attempt", "interval", "job_id", "next_due")

    def __init__(self, job_id: int, attempt: int, alias: str, interval: float) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.alias = alias
        self.interval = interval
        #: Wall-clock time (``time.time()``) the next beat is due; the claim just beat.
        self.next_due = time.time() + interval

    def condition(self) -> Q:
        return Q(pk=self.job_id, attempts=self.attempt)


def _update(beats: list[Beat], alias: str) -> int:
    from .models import Job

    condition = reduce(or_, (b.condition() for b in beats))
    return Job._base_manager.using(alias).filter(condition, state=JOB_STARTED).update(heartbeat_at=timezone.now())


def beat_inline(beat: Beat, now: float) -> bool | None:
    """Beat from the job's own thread (a progress flush). True: beat recorded;
    False: the attempt is no longer running (cancelled, ended or given up on
    elsewhere); None: not written (inside a transaction, or the database
    refused), the background thread covers it."""
    if connections[beat.alias].in_atomic_block:
        return None
    beat.next_due = now + beat.interval
    try:
        return _update([beat], beat.alias) == 1
    except Exception as exc:  # the job must not fail because a heartbeat could not be written
        logger.warning("task-ferry: could not write the heartbeat of job %s: %s", beat.job_id, exc)
        return None


def _overdue(beat: Beat) -> float:
    """When the thread beats for an attempt: half an interval after its flushes should have."""
    return beat.next_due + beat.interval / 2


class _Beater:
    """The process's heartbeat thread, started on first use (and again in a forked child)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._beats: set[Beat] = set()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, beat: Beat) -> None:
        with self._lock:
            self._beats.add(beat)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="task-ferry-heartbeat", daemon=True)
                self._thread.start()
        self._wake.set()

    def stop(self, beat: Beat) -> None:
        with self._lock:
            self._beats.discard(beat)
            empty = not self._beats
        if empty:
            self._wake.set()  # so the thread closes its connection now, not an interval later

    def running(self) -> int:
        with self._lock:
            return len(self._beats)

    def _loop(self) -> None:
        while True:
            with self._lock:
                beats = list(self._beats)
            if not beats:
                # Nothing to beat for: hold no database connection while idle.
                connections.close_all()
                self._wake.wait()
                self._wake.clear()
                continue
            now = time.time()
            due = [b for b in beats if _overdue(b) <= now]
            if due:
                self._beat(due, now)
            wait = min(_overdue(b) for b in beats) - time.time()
            self._wake.wait(max(wait, 0.05))
            self._wake.clear()

    def _beat(self, due: list[Beat], now: float) -> None:
        by_alias: dict[str, list[Beat]] = {}
        for b in due:
            b.next_due = now + b.interval
            by_alias.setdefault(b.alias, []).append(b)
        for alias, beats in by_alias.items():
            try:
                _update(beats, alias)
            except Exception as exc:
                # Database away, or (in tests) database access blocked: try again next interval
                # on a fresh connection. A job whose beats keep failing is reaped, as it should be.
                logger.warning("task-ferry: heartbeat of %d running job(s) failed: %s", len(beats), exc)
                try:
                    connections[alias].close()
                except Exception:
                    pass


_beater = _Beater()


def _after_fork_in_child() -> None:
    # The parent's thread does not exist in the child, and its lock may have been held at fork time.
    global _beater
    _beater = _Beater()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def start(job_id: int, attempt: int, alias: str, interval: float) -> Beat:
    """Keep the attempt's heartbeat going until :func:`stop`."""
    beat = Beat(job_id, attempt, alias, interval)
    _beater.start(beat)
    return beat


def stop(beat: Beat) -> None:
    _beater.stop(beat)


def running() -> int:
    """How many attempts this process is beating for (tests use it to see stops)."""
    return _beater.running()
