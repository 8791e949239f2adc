"""``JobType.isolation = "process"``: run a job's body in a child process the runner can kill.

A job whose body never reaches a progress flush (a long C call, a blocking
read, a loop without ``increment``) cannot be stopped from inside its thread.
With isolation the runner forks; the child runs ``run(job, progress)`` and
sends its outcome back through a pipe, and the runner (the parent):

* at the job's deadline sends SIGTERM, which raises ``JobTimedOut`` inside the
  body, and SIGKILL ``TIMEOUT_GRACE`` seconds later if the child is still there;
* once a second checks that the attempt is still the job's running attempt
  (one indexed query) and stops the child the same way when it is not: a cancel
  reaches a body that never flushes within about a second plus the grace;
* keeps the job's heartbeat, hooks, signals and outcome recording: only the body
  runs in the child.

The child drops (without closing: that would talk on the parent's sockets) the
database connections and plugin instances it inherited and opens its own, so
its progress flushes, ``job.log()`` lines and its own writes go through the
configured store and database as usual; it exits with ``os._exit`` so nothing
inherited is finalised. It also exits if the parent dies (``kill -9`` of the
worker), leaving the job to the reaper like any lost worker.

Needs ``os.fork`` (Linux, macOS). The return value and the exception travel
through ``pickle``; an exception that cannot be pickled arrives as
:class:`JobProcessError` naming the original type.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import select
import signal
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any

from .exceptions import JobCancelled, JobTimedOut, WorkerLost

if TYPE_CHECKING:
    from .models import Job
    from .progress import Progress
    from .registry import JobType

logger = logging.getLogger("task_ferry.isolation")

#: Seconds between two checks (by the parent) that the attempt is still running.
OWNERSHIP_POLL = 1.0
#: Inherited objects the child must never finalise (see the module docstring).
_inherited: list[Any] = []


class JobProcessError(Exception):
    """An exception raised in an isolated job's process that could not be sent back as itself."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}" if message else type_name)
        self.type_name = type_name


class _Stopped(JobCancelled):
    """The attempt stopped being the job's running attempt (cancelled, or ended elsewhere)."""


def supported() -> bool:
    return hasattr(os, "fork")


def run(
    job_type: JobType,
    job: Job,
    progress: Progress,
    *,
    attempt: int,
    deadline: float | None,
    timeout: float | None,
    grace: float,
    flush: float,
    capture_logs: bool,
) -> Any:
    """Run ``job_type.run(job, progress)`` in a forked child; return its value or raise
    what it raised (``JobCancelled``, ``JobTimedOut``, ``WorkerLost`` if it died).

    ``progress`` is the parent's root Progress: it gets the child's last percentage
    and label, so the runner records them as for an in-process run."""
    from django.db import connections

    if any(conn.in_atomic_block for conn in connections.all(initialized_only=True)):
        logger.warning(
            "task-ferry: job %s runs isolated while the runner is inside a transaction: its process uses "
            "connections of its own and does not see that transaction's uncommitted rows (the job row, maybe).",
            job.pk,
        )
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_fd)
        _child(write_fd, job_type, job, deadline, timeout, flush, capture_logs)
    os.close(write_fd)
    try:
        data, reason, status, signalled = _supervise(pid, read_fd, job.pk, attempt, deadline, grace)
    finally:
        os.close(read_fd)
    message = None
    if data:
        try:
            message = pickle.loads(bytes(data))
        except Exception:
            logger.warning("task-ferry: the isolated process of job %s sent an unreadable outcome.", job.pk)
    if message is not None:
        kind, payload, percentage, label = message
        progress._restore(percentage, label)
        if kind == "finished":
            return payload
        if reason == "stopped":
            raise _Stopped()
        if kind == "cancelled":
            raise JobCancelled()
        if kind == "timeout":
            raise JobTimedOut(payload)
        exc, text = payload
        exc._ferry_traceback = text
        raise exc
    if reason == "timeout":
        raise JobTimedOut(
            f"The job ran longer than its timeout of {timeout:g}s; its process was stopped with {signalled}."
        )
    if reason == "stopped":
        raise _Stopped()
    raise WorkerLost(f"The job's process died without reporting an outcome ({_describe(status)}).")


def _describe(status: int | None) -> str:
    if status is None:
        return "exit status unknown"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return f"killed by {name}"
    return f"exit code {os.WEXITSTATUS(status)}"


def _still_running(job_id: int, attempt: int) -> bool:
    from .models import Job
    from .states import JOB_STARTED

    try:
        return Job._base_manager.filter(pk=job_id, attempts=attempt, state=JOB_STARTED).exists()
    except Exception as exc:  # database trouble is not a reason to stop a healthy job
        logger.warning("task-ferry: could not check job %s while it runs isolated: %s", job_id, exc)
        return True


def _supervise(pid: int, fd: int, job_id: int, attempt: int, deadline: float | None, grace: float):
    """Read the child's outcome until it exits; stop it at the deadline or when the
    attempt is no longer running. Returns (data, reason, wait status, signals sent)."""
    data = bytearray()
    reason: str | None = None  # "timeout" or "stopped": why the parent signalled the child
    term_at: float | None = None
    killed = False
    signalled = ""
    next_check = time.time() + OWNERSHIP_POLL
    while True:
        now = time.time()
        waits = [next_check - now, 0.5]
        if deadline is not None and term_at is None:
            waits.append(deadline - now)
        if term_at is not None and not killed:
            waits.append(term_at + grace - now)
        try:
            ready, _, _ = select.select([fd], [], [], max(0.0, min(waits)))
        except InterruptedError:
            ready = []
        if ready:
            chunk = os.read(fd, 1 << 16)
            if chunk:
                data += chunk
                continue
            return data, reason, _wait(pid, 0), signalled  # end of the pipe: the child is exiting
        status = _wait(pid, os.WNOHANG)
        if status is not None:  # gone, though something it started still holds the pipe open
            return data + _drain(fd), reason, status, signalled
        now = time.time()
        if term_at is None:
            if deadline is not None and now >= deadline:
                reason = "timeout"
            elif now >= next_check:
                next_check = now + OWNERSHIP_POLL
                if not _still_running(job_id, attempt):
                    reason = "stopped"
            if reason is not None:
                term_at = now
                signalled = "SIGTERM"
                _signal(pid, signal.SIGTERM)
        elif not killed and now >= term_at + grace:
            killed = True
            signalled = f"SIGTERM, then SIGKILL after {grace:g}s"
            _signal(pid, signal.SIGKILL)


def _wait(pid: int, flags: int) -> int | None:
    try:
        got, status = os.waitpid(pid, flags)
    except ChildProcessError:
        return 0
    return status if got == pid else None


def _drain(fd: int) -> bytes:
    out = bytearray()
    while select.select([fd], [], [], 0)[0]:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        out += chunk
    return bytes(out)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


# ── The child ──────────────────────────────────────────────────────────────────


def _child(
    fd: int,
    job_type: JobType,
    job: Job,
    deadline: float | None,
    timeout: float | None,
    flush: float,
    capture_logs: bool,
) -> None:
    code = 0
    try:
        _detach_inherited()
        parent = os.getppid()
        threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()

        def stop(signum, frame):
            raise JobTimedOut(f"The job ran longer than its timeout of {timeout:g}s." if timeout else "Stopped.")

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the worker, which decides
        message = _run_body(job_type, job, deadline, timeout, flush, capture_logs)
        # The outcome is known: a late SIGTERM must not turn it into a half-written message.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        data = pickle.dumps(message)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    except BaseException:
        code = 1
        with contextlib.suppress(Exception):
            traceback.print_exc()
    finally:
        os._exit(code)


def _run_body(job_type, job, deadline, timeout, flush, capture_logs) -> tuple:
    from .conf import get_progress_store
    from .logs import RunLog, capture
    from .progress import Progress
    from .runner import _Flusher

    progress = Progress(100)
    run_log = RunLog(job.pk)
    job._ferry_log = run_log
    # The parent keeps the heartbeat; the child flushes progress, logs and checks the deadline.
    flusher = _Flusher(job.pk, progress, get_progress_store(), deadline, timeout, None, run_log)
    progress.attach(flusher, flush)
    try:
        with capture(run_log) if capture_logs else contextlib.nullcontext():
            value = job_type.run(job, progress)
        kind, payload = "finished", _value(value)
    except JobCancelled:
        kind, payload = "cancelled", None
    except JobTimedOut as exc:
        kind, payload = "timeout", str(exc)
    except BaseException as exc:
        kind, payload = "failed", (_exception(exc), "".join(traceback.format_exception(exc)))
    run_log.flush()
    return kind, payload, progress.percentage, progress._label


def _value(value: Any) -> Any:
    try:
        pickle.dumps(value)
    except Exception:
        return None  # not picklable, so not JSON either: the runner would not store it
    return value


def _exception(exc: BaseException) -> BaseException:
    try:
        clone = pickle.loads(pickle.dumps(exc))
    except Exception:
        return JobProcessError(f"{type(exc).__module__}.{type(exc).__qualname__}", str(exc))
    clone.__traceback__ = None
    return clone


def _detach_inherited() -> None:
    from django.db import connections

    from . import conf

    for conn in connections.all(initialized_only=True):
        if conn.connection is not None:
            _inherited.append(conn.connection)
            conn.connection = None
    conf.forget_after_fork()


def _exit_with_parent(parent: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(70)
