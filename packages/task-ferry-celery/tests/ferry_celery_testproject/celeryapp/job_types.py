from __future__ import annotations

import os
import signal
import time

from django.db.models import F

from task_ferry.registry import JobType
from task_ferry.testing.jobs import ConformanceJobType

from .models import StubbornJob

ROUTED_QUEUE = "ferry_celery_routed"


class StubbornJobType(JobType):
    """Beats every 0.1 s for ``seconds``, ignoring SIGTERM and never touching ``progress``,
    so neither a cancel nor SIGTERM stops it: only SIGKILL does."""

    type = "ferry_celery_stubborn"
    model_class = StubbornJob
    max_count = 100

    def run(self, job: StubbornJob, progress) -> None:
        StubbornJob._base_manager.filter(pk=job.pk).update(pid=os.getpid(), body_runs=F("body_runs") + 1)
        previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            deadline = time.monotonic() + job.seconds
            while time.monotonic() < deadline:
                time.sleep(0.1)
                StubbornJob._base_manager.filter(pk=job.pk).update(beats=F("beats") + 1)
        finally:
            signal.signal(signal.SIGTERM, previous)


class RoutedJobType(ConformanceJobType):
    """The kit's job on a queue of its own (``JobType.queue``)."""

    type = "ferry_celery_routed"
    queue = ROUTED_QUEUE


ALL = [StubbornJobType, RoutedJobType]
