"""Per-job logs: ``job.log(message, level=...)`` inside ``run``, captured ``logging``
records (``JobType.capture_logs``), and paginated reads.

Lines are ``JobLog`` rows numbered 1, 2, 3, ... per job (``seq``, unique per
job). During a run the runner owns the numbering: the first write reads the
job's highest ``seq`` once, later writes count on from it, and the unique
constraint guards against a second writer (a write that collides re-reads the
highest ``seq`` and tries again once).

Costs: ``job.log()`` writes at once (one INSERT, carrying any captured records
not yet written). Captured records are buffered and written in one INSERT at
the next progress flush, every :data:`CAPTURE_BATCH` records, and when the run
ends; never one write per record.

Reads: :func:`get_logs` (``JobHandler.get_logs``) pages through a job's lines
by cursor (``after=seq``) or by page number; :func:`tail` gives the last lines.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from django.db import IntegrityError, router, transaction
from django.db.models import Max

if TYPE_CHECKING:
    from .models import Job, JobLog

LEVELS = ("debug", "info", "warning", "error", "critical")
_BY_NUMBER = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "critical",
}
#: Captured records written in one INSERT once this many are waiting.
CAPTURE_BATCH = 100
#: Loggers never captured: their records come from writing the log itself.
_IGNORED_LOGGERS = ("django.db.backends", "task_ferry")


def level_name(level: str | int) -> str:
    """``"info"`` for ``"INFO"``, ``"info"`` or ``logging.INFO``; numbers between
    levels round down (``25`` is ``"info"``). Raises ``ValueError`` for anything else."""
    if isinstance(level, int) and not isinstance(level, bool):
        for number in sorted(_BY_NUMBER, reverse=True):
            if level >= number:
                return _BY_NUMBER[number]
        return "debug"
    if isinstance(level, str):
        name = level.strip().lower()
        name = {"warn": "warning", "fatal": "critical", "exception": "error"}.get(name, name)
        if name in LEVELS:
            return name
    raise ValueError(f"unknown log level {level!r}; use one of {', '.join(LEVELS)} or a logging level number.")


class RunLog:
    """The log writer of one run: numbers lines and batches captured records."""

    __slots__ = ("_flushing", "_lock", "_seq", "buffer", "job_id")

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self.buffer: list[tuple[str, str, str, datetime]] = []
        self._seq: int | None = None  # highest seq written; None until first needed
        self._lock = threading.RLock()
        self._flushing = False

    def add(self, level: str, message: str, logger: str = "", created: datetime | None = None) -> None:
        with self._lock:
            self.buffer.append((level, message, logger, created or datetime.now(UTC)))

    def reseed(self) -> None:
        """Forget the counter (another process wrote lines meanwhile: an isolated child)."""
        with self._lock:
            self._seq = None

    def flush(self) -> None:
        """Write the waiting lines in one INSERT. Never raises: a log write that fails
        is reported through ``logging`` and must not change the job's outcome."""
        with self._lock:
            if not self.buffer or self._flushing:
                return
            pending, self.buffer = self.buffer, []
            self._flushing = True
            try:
                self._write(pending)
            except Exception:
                logging.getLogger("task_ferry.logs").warning(
                    "task-ferry: could not write %d log line(s) of job %s.", len(pending), self.job_id, exc_info=True
                )
            finally:
                self._flushing = False

    def _write(self, pending: list) -> None:
        from .models import JobLog

        for attempt in (1, 2):
            if self._seq is None:
                self._seq = _max_seq(self.job_id)
            first = self._seq + 1
            rows = [
                JobLog(job_id=self.job_id, seq=first + i, level=level, message=message, logger=logger, created_at=at)
                for i, (level, message, logger, at) in enumerate(pending)
            ]
            try:
                # A savepoint, so a collision inside the caller's transaction does not break it.
                with transaction.atomic(using=router.db_for_write(JobLog)):
                    JobLog.objects.bulk_create(rows)
            except IntegrityError:
                if attempt == 2:
                    raise
                self._seq = None  # someone else numbered lines meanwhile: count again
                continue
            self._seq = first + len(rows) - 1
            return


def _max_seq(job_id: int) -> int:
    from .models import JobLog

    return JobLog.objects.filter(job_id=job_id).aggregate(m=Max("seq"))["m"] or 0


def write_line(job: Job, message: str, level: str | int = "info") -> None:
    """``job.log()``: through the run's writer inside ``run``, numbered on its own outside."""
    name = level_name(level)
    text = str(message)
    run_log: RunLog | None = getattr(job, "_ferry_log", None)
    if run_log is None:
        run_log = RunLog(job.pk)
    run_log.add(name, text)
    run_log.flush()


class CaptureHandler(logging.Handler):
    """Root-logger handler installed for one run: keeps only the records emitted by
    the run's own thread, buffers them in the run's :class:`RunLog`."""

    def __init__(self, run_log: RunLog, thread_id: int) -> None:
        super().__init__(logging.NOTSET)
        self.run_log = run_log
        self.thread_id = thread_id

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread_id or record.name.startswith(_IGNORED_LOGGERS):
            return
        try:
            message = self.format(record)
        except Exception:
            self.handleError(record)
            return
        created = datetime.fromtimestamp(record.created, UTC)
        self.run_log.add(level_name(record.levelno), message, record.name[:200], created)
        if len(self.run_log.buffer) >= CAPTURE_BATCH:
            self.run_log.flush()


class capture:
    """Context manager: capture the calling thread's ``logging`` records into ``run_log``."""

    def __init__(self, run_log: RunLog) -> None:
        self.handler = CaptureHandler(run_log, threading.get_ident())

    def __enter__(self) -> CaptureHandler:
        logging.getLogger().addHandler(self.handler)
        return self.handler

    def __exit__(self, *exc) -> None:
        logging.getLogger().removeHandler(self.handler)


# ── Reads ──────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class LogPage:
    """One page of a job's log lines, oldest first."""

    lines: list[JobLog]
    #: More lines exist after this page.
    has_more: bool
    #: Pass as ``after`` to read the lines that follow (the last line's ``seq``; the
    #: given cursor, or 0, when the page is empty).
    next_after: int


def get_logs(job: Job | int, after: int | None = None, page: int | None = None, page_size: int = 100) -> LogPage:
    """A page of the job's log lines, oldest first, in one query.

    Either ``after`` (a cursor: lines with ``seq > after``; what ``ferry watch``
    and live readers use) or ``page`` (1-based page number); neither means the
    first page. Access control is the caller's: look the job up with
    ``JobHandler.get_job(user, id)`` first."""
    from .models import JobLog

    if after is not None and page is not None:
        raise ValueError("pass either after (a seq cursor) or page (a page number), not both.")
    if not isinstance(page_size, int) or isinstance(page_size, bool) or not 1 <= page_size <= 1000:
        raise ValueError(f"page_size must be a whole number from 1 to 1000, got {page_size!r}.")
    job_id = job if isinstance(job, int) else job.pk
    qs = JobLog.objects.filter(job_id=job_id).order_by("seq")
    if after is not None:
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            raise ValueError(f"after must be a seq (a whole number, 0 or more), got {after!r}.")
        rows = list(qs.filter(seq__gt=after)[: page_size + 1])
        start_cursor = after
    else:
        page = 1 if page is None else page
        if not isinstance(page, int) or isinstance(page, bool) or page < 1:
            raise ValueError(f"page must be a whole number from 1, got {page!r}.")
        offset = (page - 1) * page_size
        rows = list(qs[offset : offset + page_size + 1])
        start_cursor = 0
    has_more = len(rows) > page_size
    rows = rows[:page_size]
    return LogPage(rows, has_more, rows[-1].seq if rows else start_cursor)


def tail(job: Job | int, n: int) -> list[JobLog]:
    """The job's last ``n`` lines, oldest first, in one query."""
    from .models import JobLog

    job_id = job if isinstance(job, int) else job.pk
    return list(reversed(JobLog.objects.filter(job_id=job_id).order_by("-seq")[:n]))
