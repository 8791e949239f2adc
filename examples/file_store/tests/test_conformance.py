"""The file store against task-ferry's conformance kit: the same standard tests
every bundled store passes, across processes included. The live-channel test
is skipped by the store's own flag (supports_subscribe = False), never by hand."""

import pytest
from django.core.checks import run_checks

from task_ferry.testing.store import ProgressStoreConformance


class TestFileStore(ProgressStoreConformance):
    @pytest.fixture
    def progress_store_setting(self, tmp_path):
        # Installed (pip install -e examples/file_store), "file" works too.
        return {"BACKEND": "ferry_file_store.FileProgressStore", "OPTIONS": {"DIRECTORY": str(tmp_path / "ferry")}}


def test_a_directory_that_cannot_be_created_is_a_system_check_error(settings, tmp_path, db):
    # db: some of Django 6.1's checks query the database.
    (tmp_path / "a-file").write_text("")
    directory = tmp_path / "a-file" / "ferry"
    settings.TASK_FERRY = {
        "PROGRESS_STORE": {"BACKEND": "ferry_file_store.FileProgressStore", "OPTIONS": {"DIRECTORY": str(directory)}}
    }
    errors = [e for e in run_checks() if e.id == "ferry_file_store.E001"]
    assert len(errors) == 1
    assert str(directory) in errors[0].msg


def test_a_relative_directory_is_refused(settings, db):
    settings.TASK_FERRY = {
        "PROGRESS_STORE": {"BACKEND": "ferry_file_store.FileProgressStore", "OPTIONS": {"DIRECTORY": "ferry"}}
    }
    errors = [e for e in run_checks() if e.id == "task_ferry.E005"]
    assert len(errors) == 1
    assert "DIRECTORY must be an absolute path" in errors[0].msg
