import pytest
from django.contrib.auth import get_user_model
from ferry_core_testproject.testapp.models import ExportJob, ScriptedJob

from task_ferry.handler import JobHandler
from task_ferry.models import Job


@pytest.fixture
def user(db):
    return get_user_model().objects.create_user("alice")


def test_export_runs_to_finished(user):
    job = JobHandler.create_and_start(user, "export_table", table_id=1)
    job.refresh_from_db()
    assert job.state == "finished"
    assert job.progress_percentage == 100
    assert job.output_path == "/exports/result.csv"
    assert job.queue == "exports"
    assert job.type == "export_table"
    assert job.attempts == 1
    assert isinstance(Job.objects.get(pk=job.pk).specific, ExportJob)


def test_result_stored(user):
    job = JobHandler.create_and_start(user, "scripted", steps=4)
    job.refresh_from_db()
    assert job.result == {"steps": 4}
    assert job.body_runs == 1


def test_create_many(user, django_assert_max_num_queries):
    jobs = JobHandler.create_many(None, "scripted", [{"steps": 1}] * 5)
    assert ScriptedJob.objects.filter(state="finished").count() == 5
    assert len({j.pk for j in jobs}) == 5
