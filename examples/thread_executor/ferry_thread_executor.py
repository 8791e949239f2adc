"""``thread``: a task-ferry executor that runs jobs on a thread pool of the
process that dispatches them.

The worked example of a third-party executor (see ``docs/writing-plugins.md``
in the task-ferry repository): the whole contract of
:class:`task_ferry.protocols.Executor`, proven by the conformance kit in
``tests/test_conformance.py``. Good for small deployments and scripts that want
``create_and_start`` to return at once without running a broker; jobs still
running when the process exits are lost (the reaper ends them as
"worker lost").

Settings::

    TASK_FERRY = {"EXECUTOR": {"BACKEND": "thread", "OPTIONS": {"MAX_WORKERS": 4}}}

OPTIONS: ``MAX_WORKERS``, threads running jobs at once (default 4).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import close_old_connections

from task_ferry import PROTOCOL_VERSION
from task_ferry.exceptions import Unsupported
from task_ferry.plugins import checked_options
from task_ferry.protocols import Dispatch
from task_ferry.runner import run_job

OPTIONS = ("MAX_WORKERS",)
logger = logging.getLogger(__name__)


class ThreadExecutor:
    # No base class needed: the protocol is structural (typing.Protocol).
    protocol_version = PROTOCOL_VERSION
    #: Core calls submit() from transaction.on_commit, so a thread never sees an uncommitted job.
    supports_defer_on_commit = True
    #: Jobs run in this process, so any progress store works (LocMemCache too).
    out_of_process = False
    supports_queues = False
    supports_priority = False
    #: No timer: a retry with a backoff waits, "retrying", for `manage.py ferry reap`.
    supports_delay = False
    #: A cancelled pending job is still submitted; the runner's claim skips it.
    supports_revoke = False
    #: Python cannot stop a thread from outside.
    supports_kill = False

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        # A ValueError naming unknown keys: `manage.py check` reports it as task_ferry.E005.
        options = checked_options(options, OPTIONS, "thread executor")
        workers = options.get("MAX_WORKERS", 4)
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"MAX_WORKERS must be a whole number of threads >= 1, got {workers!r}.")
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="task-ferry")

    def submit(self, dispatch: Dispatch) -> str | None:
        self.pool.submit(_run, dispatch.job_id, dispatch.job_type)
        return None  # no engine id of its own: core keeps dispatch.task_id

    def revoke(self, job_id: int, task_id: str) -> None:
        raise Unsupported("the thread executor cannot revoke queued jobs (supports_revoke is False).")

    def kill(self, job_id: int, task_id: str) -> None:
        raise Unsupported("the thread executor cannot kill running jobs (supports_kill is False).")

    def check(self) -> list:
        return []

    def close(self) -> None:
        """Called by core when the settings change (and so between tests): finish what runs."""
        self.pool.shutdown(wait=True, cancel_futures=True)


def _run(job_id: int, job_type: str) -> None:
    try:
        run_job(job_id, job_type)  # claim, run, record, hooks: all core's
    except Exception:
        # The job's own exceptions are recorded on the job; this is the runner failing (database down...).
        logger.exception("ferry_thread_executor: running job %s failed.", job_id)
    finally:
        # Like the end of a request: this thread's connections honour CONN_MAX_AGE.
        close_old_connections()
