from __future__ import annotations

import time

from django.db.models import F

from task_ferry.registry import JobType

from .models import ConformanceJob

CONFORMANCE_TYPE = "ferry_conformance"


class ConformanceJobType(JobType):
    """``steps`` increments, sleeping ``step_sleep`` seconds before each; fails
    with ``fail_with`` if set; returns ``{"steps": steps}``."""

    type = CONFORMANCE_TYPE
    model_class = ConformanceJob
    max_count = 1000

    def run(self, job: ConformanceJob, progress) -> dict:
        # Counted with an autocommitted UPDATE so other processes see every start.
        ConformanceJob._base_manager.filter(pk=job.pk).update(body_runs=F("body_runs") + 1)
        for step in range(job.steps):
            if job.step_sleep:
                time.sleep(job.step_sleep)
            progress.increment(100 / job.steps, state=f"step {step + 1} of {job.steps}")
        if job.fail_with:
            raise RuntimeError(job.fail_with)
        return {"steps": job.steps}
