"""What a person should see for a job right now: one rule, used by the admin,
``manage.py ferry``, the model's ``get_cached_*`` methods and the REST API.

For a job the database records as ended, the database decides (state,
percentage, label). For any other job, the progress store's snapshot decides
when there is one, else the database. Snapshots of a whole page are read with
ONE ``read_many`` call, whatever the page size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .conf import get_progress_store
from .states import JOB_STATES_ENDED


@dataclass(frozen=True, slots=True)
class LiveProgress:
    state: str
    percentage: int
    label: str
    #: ``"store"`` or ``"database"``: where the values came from.
    source: str


def live_progress(jobs: Iterable, on_store_error: Callable[[Exception], None] | None = None) -> dict[int, LiveProgress]:
    """``{job.pk: LiveProgress}`` for ``jobs`` (Job instances), with one store round trip
    (and one query, only when some running job has no snapshot).

    If the store cannot be read, ``on_store_error(exc)`` is called and the
    database values are used; without ``on_store_error`` the error propagates."""
    jobs = list(jobs)
    running = [job.pk for job in jobs if job.state not in JOB_STATES_ENDED]
    snapshots: dict = {}
    if running:
        try:
            snapshots = get_progress_store().read_many(running)
        except Exception as exc:
            if on_store_error is None:
                raise
            on_store_error(exc)
    # A job that had not ended when its row was read and has no snapshot may have
    # ended since (the runner clears the store after recording the end). Re-read
    # those rows in one query, or the reader would show stale progress going backwards.
    vanished = [pk for pk in running if pk not in snapshots]
    fresh = {}
    if vanished:
        from .models import Job

        fresh = {
            pk: (state, pct, label)
            for pk, state, pct, label in Job._base_manager.filter(
                pk__in=vanished, state__in=JOB_STATES_ENDED
            ).values_list("pk", "state", "progress_percentage", "progress_state")
        }
    out = {}
    for job in jobs:
        if job.pk in fresh:
            state, pct, label = fresh[job.pk]
            out[job.pk] = LiveProgress(state, pct, label, "database")
            continue
        snap = snapshots.get(job.pk)
        if snap is None or job.state in JOB_STATES_ENDED:
            out[job.pk] = LiveProgress(job.state, job.progress_percentage, job.progress_state, "database")
        else:
            out[job.pk] = LiveProgress(snap.state, snap.percentage, snap.label or job.progress_state, "store")
    return out
