"""``JobType.has_permission(user, action, job)``: the default policy and an override."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.contrib.contenttypes.models import ContentType
from ferry_core_testproject.testapp.job_types import ExportJobType
from ferry_core_testproject.testapp.models import ExportJob

from task_ferry.registry import PERMISSION_ACTIONS, JobType

pytestmark = pytest.mark.django_db


@pytest.fixture
def users():
    make = get_user_model().objects.create_user
    return make("owner"), make("someone"), make("operator", is_staff=True)


def export_job(user) -> ExportJob:
    ct = ContentType.objects.get_for_model(ExportJob)
    return ExportJob.objects.create(user=user, type="export_table", content_type=ct, table_id=1)


@pytest.fixture
def job(users):
    return export_job(users[0])


def test_the_actions_are_create_view_cancel_and_retry():
    assert PERMISSION_ACTIONS == ("create", "view", "cancel", "retry")


@pytest.mark.parametrize("action", PERMISSION_ACTIONS)
def test_by_default_the_owner_and_staff_may_act_on_a_job_and_nobody_else(users, job, action):
    owner, someone, operator = users
    job_type = ExportJobType()

    assert job_type.has_permission(owner, action, job) is True
    assert job_type.has_permission(operator, action, job) is True
    assert job_type.has_permission(someone, action, job) is False
    assert job_type.has_permission(AnonymousUser(), action, job) is False
    assert job_type.has_permission(None, action, job) is False


def test_by_default_any_authenticated_user_may_act_when_there_is_no_job_yet(users):
    owner, someone, _ = users
    assert ExportJobType().has_permission(someone, "create") is True
    assert ExportJobType().has_permission(owner, "view", None) is True
    assert ExportJobType().has_permission(AnonymousUser(), "create") is False


def test_a_system_job_without_an_owner_is_staff_only(users):
    owner, _, operator = users
    job = export_job(None)
    assert ExportJobType().has_permission(owner, "view", job) is False
    assert ExportJobType().has_permission(operator, "view", job) is True


def test_the_default_policy_is_callable_on_the_class(users, job):
    assert JobType.has_permission(users[0], "cancel", job) is True
    assert JobType.has_permission(users[1], "cancel", job) is False


@pytest.mark.parametrize("action", ["delete", "View", "", None])
def test_an_unknown_action_is_a_value_error_naming_the_valid_ones(users, job, action):
    with pytest.raises(ValueError, match="create, view, cancel, retry") as excinfo:
        ExportJobType().has_permission(users[0], action, job)
    assert repr(action) in str(excinfo.value)


class ReadOnlyForOthers(ExportJobType):
    """An override: anyone signed in may view a job of this type; only staff may create
    one; the rest keeps the default (owner or staff)."""

    def has_permission(self, user, action, job=None):
        if action == "view" and getattr(user, "is_authenticated", False):
            return True
        if action == "create":
            return bool(user.is_staff)
        return super().has_permission(user, action, job)


def test_an_override_narrows_or_widens_per_action_and_keeps_the_default_for_the_rest(users, job):
    owner, someone, operator = users
    job_type = ReadOnlyForOthers()

    assert job_type.has_permission(someone, "view", job) is True  # widened
    assert job_type.has_permission(owner, "create") is False  # narrowed
    assert job_type.has_permission(operator, "create") is True
    assert job_type.has_permission(someone, "cancel", job) is False  # the default
    assert job_type.has_permission(owner, "retry", job) is True
    with pytest.raises(ValueError, match="unknown permission action 'archive'"):
        job_type.has_permission(owner, "archive", job)  # super() still checks the action
