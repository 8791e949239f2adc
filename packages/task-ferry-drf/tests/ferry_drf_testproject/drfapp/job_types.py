from __future__ import annotations

import logging
import time

from task_ferry.models import Job
from task_ferry.registry import JobType

from .models import ExportJob, StepJob


class ExportJobType(JobType):
    """The 0.1.1 README's example type."""

    type = "export_table"
    model_class = ExportJob
    max_count = 2
    # Its log (GET /<id>/logs/) has a job.log() line and a captured logging record.
    capture_logs = True

    def prepare_values(self, values: dict, user) -> dict:
        if "table_id" not in values:
            raise ValueError("table_id is required")
        return values

    def run(self, job: ExportJob, progress) -> None:
        job.log(f"Exporting table {job.table_id}")
        logging.getLogger("drfapp.export").warning("Table %s has no index", job.table_id)
        progress.increment(50, state="Fetched rows")
        job.output_path = f"/exports/{job.table_id}.csv"
        job.save(update_fields=["output_path"])
        progress.increment(50, state="Done")


class StepJobType(JobType):
    type = "step"
    model_class = StepJob
    max_count = 100

    def run(self, job: StepJob, progress):
        for step in range(job.steps):
            if job.step_sleep:
                time.sleep(job.step_sleep)
            progress.increment(100 / job.steps, state=f"step {step + 1} of {job.steps}")
        if job.fail_with:
            raise RuntimeError(job.fail_with)
        return {"steps": job.steps}


class PlainJobType(JobType):
    """A type whose model is ``Job`` itself (no fields of its own)."""

    type = "plain"
    model_class = Job
    max_count = 100

    def run(self, job, progress):
        progress.increment(100, state="done")


#: What ``GuardedJobType.has_permission`` answers per action; tests change it (``guard_policy`` fixture).
#: A value is a bool or a callable ``(user, job) -> bool``.
GUARD_POLICY: dict = {}
#: Every call of the hook, as ``(username, action, job id or None)``.
GUARD_CALLS: list = []


class GuardedJobType(JobType):
    """A type with a ``has_permission`` hook steered by ``GUARD_POLICY``."""

    type = "guarded"
    model_class = StepJob
    max_count = 100

    def has_permission(self, user, action, job=None) -> bool:
        GUARD_CALLS.append((user.username, action, None if job is None else job.pk))
        rule = GUARD_POLICY.get(action, True)
        allowed = rule(user, job) if callable(rule) else rule
        # The hook narrows core's default policy (owner or staff).
        return bool(allowed) and super().has_permission(user, action, job)

    def run(self, job, progress):
        progress.increment(100, state="done")


ALL = [ExportJobType, StepJobType, PlainJobType, GuardedJobType]
