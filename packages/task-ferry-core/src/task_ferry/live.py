"""What a person should see for a job right now: one rule, used by the admin,
``manage.py ferry``, the model's ``get_cached_*`` methods and the REST API
(task-ferry-drf).

The rule (:func:`live_values`): for a job the database records as ended, the
database decides (state, percentage, label). For any other job, the progress
store's snapshot decides when there is one, else the database. The three values
always come from the same source, never mixed.

Snapshots of a whole page are read with ONE ``read_many`` call, whatever the
page size, and only for jobs that have not ended (:func:`read_snapshots`). A
page is read row first, store second, so a job that ends between the two reads
has no snapshot any more (the runner clears the store after recording the end)
while its row still says it runs: such rows are re-read, in one query, so the
reader never sees progress going backwards. :func:`live_progress` does this for
``Job`` instances, :func:`live_rows` for ``values()`` dicts (every column
re-read). A reader of a single job can avoid the re-read by reading the store
*before* the row and applying :func:`live_values`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .conf import get_progress_store
from .health import store_health
from .protocols import Snapshot
from .states import JOB_STATES_ENDED

OnStoreError = Callable[[Exception], None]


@dataclass(frozen=True, slots=True)
class LiveProgress:
    state: str
    percentage: int
    label: str
    #: ``"store"`` or ``"database"``: where the values came from.
    source: str
    #: A cancel was requested and the job has not stopped yet (from the store only).
    cancel_requested: bool = False


def live_values(state: str, percentage: int, label: str, snapshot: Snapshot | None) -> LiveProgress:
    """The rule for one job, given its database ``state``, ``percentage`` and ``label``
    and its store ``snapshot`` (None if it has none). A snapshot without a label keeps
    the database's label."""
    if snapshot is None or state in JOB_STATES_ENDED:
        return LiveProgress(state, percentage, label, "database")
    return LiveProgress(
        snapshot.state, snapshot.percentage, snapshot.label or label, "store", snapshot.cancel_requested
    )


def read_snapshots(job_ids: Iterable[int], on_store_error: OnStoreError | None = None) -> dict[int, Snapshot]:
    """Snapshots of ``job_ids`` with one ``read_many`` call (none for no ids).

    If the store cannot be read, ``on_store_error(exc)`` is called and ``{}``
    returned; without ``on_store_error`` the error propagates. A successful read
    tells :data:`task_ferry.health.store_health` that the store is reachable (the
    end of an outage is logged once)."""
    ids = list(job_ids)
    if not ids:
        return {}
    store = get_progress_store()
    try:
        found = store.read_many(ids)
    except Exception as exc:
        if on_store_error is None:
            raise
        on_store_error(exc)
        return {}
    store_health.ok(store)
    return found


def log_store_error(exc: Exception) -> None:
    """An ``on_store_error`` for readers that show database values while the store is
    down: logs the outage once (not once per read) through ``store_health``."""
    store_health.failed(get_progress_store(), exc)


def live_progress(jobs: Iterable, on_store_error: OnStoreError | None = None) -> dict[int, LiveProgress]:
    """``{job.pk: LiveProgress}`` for ``jobs`` (Job instances), with one store round trip
    (and one query, only when some running job has no snapshot).

    If the store cannot be read, ``on_store_error(exc)`` is called and the
    database values are used; without ``on_store_error`` the error propagates."""
    jobs = list(jobs)
    running = [job.pk for job in jobs if job.state not in JOB_STATES_ENDED]
    snapshots = read_snapshots(running, on_store_error)
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
            out[job.pk] = LiveProgress(*fresh[job.pk], "database")
        else:
            out[job.pk] = live_values(job.state, job.progress_percentage, job.progress_state, snapshots.get(job.pk))
    return out


def live_rows(
    rows: Sequence[dict[str, Any]],
    on_store_error: OnStoreError | None = None,
    columns: Sequence[str] | None = None,
) -> list[tuple[dict[str, Any], LiveProgress]]:
    """:func:`live_progress` for rows read with ``Job``'s ``values(*columns)``: each row
    (replaced by a fresh read if its job ended meanwhile) with its :class:`LiveProgress`,
    in order. With one store round trip for the rows whose jobs have not ended (none if
    all have), and one query only when one of those has no snapshot.

    ``columns`` (default: the first row's keys) must include ``id``, ``state``,
    ``progress_percentage`` and ``progress_state``; a re-read row has all of them, so
    it never mixes old and new values."""
    rows = list(rows)
    running = [row["id"] for row in rows if row["state"] not in JOB_STATES_ENDED]
    snapshots = read_snapshots(running, on_store_error)
    vanished = [pk for pk in running if pk not in snapshots]
    if vanished:
        from .models import Job

        names = list(columns or rows[0])
        ended = {
            row["id"]: row
            for row in Job._base_manager.filter(pk__in=vanished, state__in=JOB_STATES_ENDED).values(*names)
        }
        if ended:
            rows = [ended.get(row["id"], row) for row in rows]
    return [
        (
            row,
            live_values(row["state"], row["progress_percentage"], row["progress_state"], snapshots.get(row["id"])),
        )
        for row in rows
    ]
