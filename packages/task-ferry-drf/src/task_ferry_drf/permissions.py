"""Who may do what with a job.

Two layers, both always applied:

1. **Visibility** (not configurable): a user sees their own jobs; staff
   (``user.is_staff``) see every job. Anything else answers 404, exactly like a
   job id that does not exist, on every endpoint.
2. **The type's hook**: ``JobType.has_permission(user, action, job) -> bool``,
   with ``action`` one of :data:`ACTIONS`. It can only narrow visibility:

   ``"create"``  called with ``job=None`` before a job of the type is created
                 (False: 403);
   ``"view"``    called with the job for detail, cancel, retry and events
                 (False: 404, as if the job did not exist), and once per type
                 with ``job=None`` for the list (False: the type's jobs are left
                 out of the list);
   ``"cancel"``, ``"retry"``  called with the job (False: 403).

   A type without the method gets :func:`default_has_permission` (the job's
   owner or staff), which is the same policy core's ``JobType.has_permission``
   has by default.
"""

from __future__ import annotations

from typing import Any

ACTIONS = ("create", "view", "cancel", "retry")


def default_has_permission(user: Any, action: str, job: Any) -> bool:
    """The job's owner or a staff user; any authenticated user when there is no job yet."""
    if not getattr(user, "is_authenticated", False):
        return False
    if job is None:
        return True
    return bool(user.is_staff) or (job.user_id is not None and job.user_id == user.pk)


def has_permission(job_type: Any, user: Any, action: str, job: Any = None) -> bool:
    """Ask ``job_type``'s ``has_permission`` hook, or the default policy when it has none
    (or the job's type is no longer registered, ``job_type=None``)."""
    hook = getattr(job_type, "has_permission", None) if job_type is not None else None
    if hook is None:
        return default_has_permission(user, action, job)
    return bool(hook(user, action, job))


def sees_all(user: Any) -> bool:
    """Staff see every job."""
    return bool(getattr(user, "is_staff", False))
