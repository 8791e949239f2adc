"""The ``immediate`` executor: runs each job inline, in the caller's process.

For tests, scripts and development. ``create_and_start`` returns once the job
has ended. Capabilities: none of queues, priority, delay, revoke or kill.

OPTIONS: ``RAISE_EXCEPTIONS`` (default True, as in 0.1.1): a job that fails is
recorded failed *and* its exception is raised to the caller.
"""

from __future__ import annotations

from typing import Any

from ..plugins import checked_options
from ..protocols import Dispatch
from .base import BaseExecutor


class ImmediateExecutor(BaseExecutor):
    supports_defer_on_commit = False
    out_of_process = False

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(checked_options(options, ("RAISE_EXCEPTIONS",), "immediate executor"))
        self.raise_exceptions = bool(self.options.get("RAISE_EXCEPTIONS", True))

    def submit(self, dispatch: Dispatch) -> str | None:
        # Through enqueue(), so 0.1.1 tests that patch ImmediateExecutor.enqueue keep working.
        self.enqueue(dispatch.job_id, queue=dispatch.queue)
        return None

    def enqueue(self, job_id: int, queue: str | None = None) -> None:
        from ..runner import run_job

        result = run_job(job_id)
        if result.exception is not None and self.raise_exceptions:
            raise result.exception
