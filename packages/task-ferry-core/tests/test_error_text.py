"""An exception whose message holds a NUL character (binary data in an error message)
still ends its job ``failed``: PostgreSQL refuses NUL in text, so the runner stores it
escaped rather than letting the outcome's write fail and the job stay ``started``."""

from __future__ import annotations

import pytest
from django.test import override_settings

from task_ferry.executors.base import BaseExecutor
from task_ferry.handler import JobHandler
from task_ferry.models import Job, JobAttempt
from task_ferry.registry import job_type_registry
from task_ferry.runner import error_text, run_job
from task_ferry.states import JOB_FAILED


class BinaryError(Exception):
    pass


class Parking(BaseExecutor):
    """Takes the dispatch and runs nothing: the test runs the job itself."""

    out_of_process = True
    supports_defer_on_commit = True

    def submit(self, dispatch):
        return None


def test_error_text_escapes_nul_and_names_empty_errors():
    assert error_text(ValueError("bad\x00byte")) == "bad\\x00byte"
    assert error_text(ValueError("")) == "ValueError"
    assert error_text(ValueError("plain")) == "plain"


def test_a_nul_in_the_error_still_ends_the_job_failed(transactional_db, monkeypatch):
    def run(job, progress):
        progress.increment(50)
        raise BinaryError("header \x00\x01 unreadable")

    monkeypatch.setattr(job_type_registry.get("scripted"), "run", run)
    with override_settings(TASK_FERRY={"EXECUTOR": f"{__name__}.Parking", "PROGRESS_STORE": "database"}):
        job = JobHandler.create_and_start(None, "scripted")
        assert run_job(job.pk).outcome == JOB_FAILED
    job = Job.objects.get(pk=job.pk)
    assert (job.state, job.error) == (JOB_FAILED, "header \\x00\x01 unreadable")
    attempt = JobAttempt.objects.get(job_id=job.pk)
    assert attempt.error == job.error and "\x00" not in attempt.traceback and "BinaryError" in attempt.traceback
    assert run_job(job.pk).outcome == "skipped"  # ended for good: a redelivery does nothing


@pytest.fixture(autouse=True)
def _no_retries():
    scripted = job_type_registry.get("scripted")
    assert getattr(scripted, "max_attempts", 1) in (None, 1)
