"""Job types of the failure tests, on the conformance kit's ``ConformanceJob`` model.

Every body counts its starts in ``body_runs`` (an autocommitted UPDATE, so a
body that is killed right after still counts) and logs ``pid <n> attempt <a>``
first, so a test knows which process to kill and can check it is gone. Only
the first attempt sleeps ``step_sleep`` between steps: a retry after a killed
attempt finishes at once.
"""

from __future__ import annotations

import os
import time

from django.db.models import F

from task_ferry.registry import JobType
from task_ferry.testing.models import ConformanceJob


def _start(job) -> None:
    ConformanceJob._base_manager.filter(pk=job.pk).update(body_runs=F("body_runs") + 1)
    job.log(f"pid {os.getpid()} attempt {job.attempts}")


class ChaosWork(JobType):
    """``steps`` increments (``step_sleep`` apart on the first attempt); one attempt."""

    type = "chaos_work"
    model_class = ConformanceJob
    max_count = 100_000

    def run(self, job, progress):
        _start(job)
        pause = job.step_sleep if job.attempts == 1 else 0.0
        for step in range(job.steps):
            time.sleep(pause)
            progress.increment(100 / job.steps, state=f"step {step + 1} of {job.steps}")
        return {"steps": job.steps, "pid": os.getpid()}


class ChaosRetried(ChaosWork):
    """Like ``chaos_work``, with a second attempt right away if the first is lost."""

    type = "chaos_retried"
    max_attempts = 2
    retry_backoff = 0


class ChaosStubborn(JobType):
    """Never yields, ignores cancellation and swallows every exception (SIGTERM's
    ``JobTimedOut`` included): only SIGKILL of its isolated process stops it."""

    type = "chaos_stubborn"
    model_class = ConformanceJob
    max_count = 100_000
    isolation = "process"
    timeout = 2.0

    def run(self, job, progress):
        _start(job)
        while True:
            try:
                time.sleep(3600)
            except BaseException as exc:
                job.log(f"ignoring {type(exc).__name__}")


class ChaosSleeper(JobType):
    """Never yields; not isolated: past its timeout only the executor's ``kill`` stops it."""

    type = "chaos_sleeper"
    model_class = ConformanceJob
    max_count = 100_000
    timeout = 2.0

    def run(self, job, progress):
        _start(job)
        time.sleep(3600)


ALL = [ChaosWork, ChaosRetried, ChaosStubborn, ChaosSleeper]
