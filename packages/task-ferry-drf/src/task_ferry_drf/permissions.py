"""Who may do what with a job.

Two layers, both always applied:

1. **Visibility** (not configurable): a user sees their own jobs; staff
   (``user.is_staff``) see every job. Anything else answers 404, exactly like a
   job id that does not exist, on every endpoint.
2. **The type's policy**: core's ``JobType.has_permission(user, action, job) -> bool``
   (default: the job's owner or staff; any authenticated user when there is no
   job), with ``action`` one of ``task_ferry.registry.PERMISSION_ACTIONS``. A type
   overrides it to narrow what visibility allows:

   ``"create"``  called with ``job=None`` before a job of the type is created
                 (False: 403);
   ``"view"``    called with the job for detail, cancel, retry, events and logs
                 (False: 404, as if the job did not exist), and once per type
                 with ``job=None`` for the list (False: the type's jobs are left
                 out of the list);
   ``"cancel"``, ``"retry"``  called with the job (False: 403).

   The hook gets an instance of the type's own model.
"""

from __future__ import annotations

from typing import Any

from task_ferry.registry import JobType


def has_permission(job_type: Any, user: Any, action: str, job: Any = None) -> bool:
    """``job_type.has_permission(user, action, job)``. A job whose type is no longer
    registered (``job_type=None``) gets core's default policy; so does a type registered
    without subclassing ``JobType`` that has no ``has_permission`` of its own."""
    if isinstance(job_type, JobType):
        return bool(job_type.has_permission(user, action, job))
    hook = getattr(job_type, "has_permission", None)
    if callable(hook):
        return bool(hook(user, action, job))
    return JobType.has_permission(user, action, job)


def default_view_policy(job_type: Any) -> bool:
    """Whether :func:`has_permission` answers ``view`` for ``job_type`` by core's default
    policy (owner or staff), with no hook of the type's own: then a reader that already
    limits rows to the caller's (or that serves staff) needs no instance to ask it."""
    if job_type is None:
        return True
    if not isinstance(job_type, JobType) or "has_permission" in vars(job_type):
        return False
    return getattr(type(job_type).has_permission, "__func__", None) is JobType.has_permission.__func__


def sees_all(user: Any) -> bool:
    """Staff see every job."""
    return bool(getattr(user, "is_staff", False))
