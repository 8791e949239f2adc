"""A task that django-task-ferry 0.1.1 queued before the upgrade still runs its job
when a real ``db_worker`` reaches it after the upgrade."""

from __future__ import annotations

import pytest
from django_tasks_db.models import DBTaskResult

from task_ferry.testing.base import create_pending_job
from task_ferry.testing.executor import wait_for_state

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: What 0.1.1's DjangoTasksExecutor stored in each queued row.
LEGACY_TASK_PATH = "task_ferry.django_tasks_runner.run_job_via_django_tasks"


@pytest.fixture
def executor(settings, transactional_db):
    from task_ferry.conf import get_executor

    settings.TASK_FERRY = {**settings.TASK_FERRY, "EXECUTOR": {"BACKEND": "django_tasks", "OPTIONS": {}}}
    return get_executor()


def test_the_011_task_path_resolves_to_the_plugin_task():
    from django.utils.module_loading import import_string

    from task_ferry_django_tasks.tasks import run_ferry_job

    assert import_string(LEGACY_TASK_PATH) is run_ferry_job


def test_a_row_queued_by_011_runs_its_job(executor, start_db_worker):
    job = create_pending_job()
    # Queue through the framework (a valid row for this backend), then make it the row 0.1.1 wrote:
    # its task path and its one positional argument, the job id.
    from task_ferry_django_tasks.tasks import run_ferry_job

    result = run_ferry_job.using(backend="default").enqueue(job.pk)
    DBTaskResult.objects.filter(id=result.id).update(
        task_path=LEGACY_TASK_PATH, args_kwargs={"args": [job.pk], "kwargs": {}}
    )
    with start_db_worker("default"):
        wait_for_state(job.pk, "finished", 30.0)
    job.refresh_from_db()
    assert (job.state, job.body_runs, job.progress_percentage) == ("finished", 1, 100)
    row = DBTaskResult.objects.get(id=result.id)
    assert (row.task_path, str(row.status), row.return_value) == (LEGACY_TASK_PATH, "SUCCESSFUL", "finished")
