from __future__ import annotations

import threading
import time

from django.db.models import F
from django.db.models.functions import Concat  # noqa: F401

from task_ferry.registry import JobType

from .models import ExportJob, ScriptedJob


class ExportJobType(JobType):
    """The 0.1.1 README's example type."""

    type = "export_table"
    model_class = ExportJob
    max_count = 2
    queue = "exports"

    def prepare_values(self, values: dict, user) -> dict:
        if "table_id" not in values:
            raise ValueError("table_id is required")
        return values

    def run(self, job: ExportJob, progress) -> None:
        rows = list(range(job.table_id % 7 + 3))
        progress.increment(10, state="Fetched rows")
        write_stage = progress.create_child(represents=80, total=len(rows))
        for row in rows:
            write_stage.increment(state=f"Writing row {row}...")
        progress.increment(10, state="Finalising")
        job.output_path = "/exports/result.csv"
        job.save(update_fields=["output_path"])


#: Hooks of one job may run at once in two threads of a test process (a reaper in the test's
#: thread, the given-up worker in another): their read-append-write must not interleave.
_HOOKS_LOCK = threading.Lock()


def _record_hook(job: ScriptedJob, name: str) -> None:
    # Appended in the database so hooks run in any process are visible to the test.
    with _HOOKS_LOCK:
        current = ScriptedJob._base_manager.filter(pk=job.pk).values_list("hook_calls", flat=True).first() or []
        ScriptedJob._base_manager.filter(pk=job.pk).update(hook_calls=[*current, name])


class ScriptedJobType(JobType):
    type = "scripted"
    model_class = ScriptedJob
    max_count = 3

    def run(self, job: ScriptedJob, progress):
        ScriptedJob._base_manager.filter(pk=job.pk).update(body_runs=F("body_runs") + 1)
        for step in range(job.steps):
            if job.step_sleep:
                time.sleep(job.step_sleep)
            progress.increment(100 / job.steps, state=f"step {step + 1}")
        if job.fail_with:
            raise RuntimeError(job.fail_with)
        return {"steps": job.steps}

    def on_error(self, job, exc):
        _record_hook(job, "on_error")

    def on_cancelled(self, job):
        _record_hook(job, "on_cancelled")

    def after_run(self, job):
        _record_hook(job, "after_run")


ALL = [ExportJobType, ScriptedJobType]


class CheckLoopJobType(JobType):
    """Works without ever calling ``increment``: sleeps ``step_sleep`` then calls
    ``progress.check()``, ``steps`` times. Proves that ``check()`` alone notices a
    cancel (tests/test_progress.py)."""

    type = "check_loop"
    model_class = ScriptedJob
    max_count = 1000

    def run(self, job: ScriptedJob, progress):
        ScriptedJob._base_manager.filter(pk=job.pk).update(body_runs=F("body_runs") + 1)
        for _ in range(job.steps):
            time.sleep(job.step_sleep)
            progress.check()
        return {"checked": job.steps}

    def on_cancelled(self, job):
        _record_hook(job, "on_cancelled")


ALL.append(CheckLoopJobType)
