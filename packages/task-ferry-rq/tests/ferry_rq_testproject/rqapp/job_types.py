from __future__ import annotations

import os
import signal
import time

from django.db.models import F
from rq import get_current_job

from task_ferry.registry import JobType

from .models import ProbeJob


class ProbeJobType(JobType):
    """Records its process and RQ job, then beats every 0.1 s for ``seconds``, ignoring
    SIGTERM and never touching ``progress``: neither a cancel nor SIGTERM stops it,
    only SIGKILL does."""

    type = "ferry_rq_probe"
    model_class = ProbeJob
    max_count = 100

    def run(self, job: ProbeJob, progress) -> None:
        rq_job = get_current_job()
        ProbeJob._base_manager.filter(pk=job.pk).update(
            pid=os.getpid(),
            rq_job_id=rq_job.id if rq_job else "",
            rq_queue=rq_job.origin if rq_job else "",
            body_runs=F("body_runs") + 1,
        )
        previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            deadline = time.monotonic() + job.seconds
            while time.monotonic() < deadline:
                time.sleep(0.1)
                ProbeJob._base_manager.filter(pk=job.pk).update(beats=F("beats") + 1)
        finally:
            signal.signal(signal.SIGTERM, previous)
