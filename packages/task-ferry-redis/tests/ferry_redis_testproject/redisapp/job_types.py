from __future__ import annotations

import time

from task_ferry.registry import JobType

from .models import StepJob


class StepJobType(JobType):
    """Increments ``steps`` times, sleeping ``step_sleep`` seconds before each step.

    Any exception reaching ``run`` (say, from a store write inside ``increment``)
    ends the job as failed, so a finished job proves none did."""

    type = "redis_steps"
    model_class = StepJob
    max_count = 1000

    def run(self, job: StepJob, progress) -> dict:
        for step in range(job.steps):
            if job.step_sleep:
                time.sleep(job.step_sleep)
            progress.increment(100 / job.steps, state=f"step {step + 1} of {job.steps}")
        return {"steps": job.steps}
