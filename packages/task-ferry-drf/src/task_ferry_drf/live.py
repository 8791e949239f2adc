"""The live view of jobs: database rows merged with progress-store snapshots.

One rule, used by every endpoint and the event stream:

* a job whose database state has ended (finished, failed, cancelled) shows the
  database's ``state``, ``progress_percentage`` and ``progress_state``: the row
  is final and the store may still hold a stale snapshot;
* otherwise the store's snapshot (``state``, ``percentage``, ``label``) when
  there is one, else the database values.

The three fields always come from the same source, never mixed. Snapshots for
any number of jobs are read with one ``read_many`` call (one round trip with
the bundled stores); a store that cannot be reached degrades to database values
and is logged once per outage, so an API read never fails because of the store.
For a single job the store is read *before* the row: a job that ends between
the two reads then shows its final database state, never a stale snapshot. A
page is read the other way round (the rows decide which jobs to ask the store
about), so running rows left without a snapshot are re-read once
(:func:`refresh_vanished`).
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from rest_framework import ISO_8601, serializers
from rest_framework.settings import api_settings

from task_ferry.conf import get_progress_store
from task_ferry.models import Job
from task_ferry.protocols import Snapshot
from task_ferry.registry import job_type_registry
from task_ferry.runner import store_health
from task_ferry.states import JOB_STATES_ENDED, JOB_STATES_RUNNING

#: Largest id a job can have (BigAutoField); larger path ids are answered 404 without a query.
MAX_JOB_ID = 2**63 - 1

#: Columns of the base table shown by the list and the event stream.
SUMMARY_COLUMNS = (
    "id",
    "type",
    "state",
    "progress_percentage",
    "progress_state",
    "error",
    "human_readable_error",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
    "queue",
    "priority",
    "attempts",
    "user_id",
    # Rows written by 0.1.1 have no ``type``; their content type names the model.
    "content_type__app_label",
    "content_type__model",
)
DETAIL_COLUMNS = (*SUMMARY_COLUMNS, "run_after", "result")

_datetime = serializers.DateTimeField()


def datetime_renderer() -> Callable[[datetime.datetime | None], str | None]:
    """A function rendering datetimes as DRF does (current time zone, ``DATETIME_FORMAT``), as
    0.1.1's ModelSerializer did. Make one per response: the common case (ISO 8601, time zones
    on) then resolves the time zone once instead of once per value, which on a 200-job page
    costs more than the queries do."""
    if api_settings.DATETIME_FORMAT != ISO_8601 or not settings.USE_TZ:
        return lambda value: None if value is None else _datetime.to_representation(value)
    tz = timezone.get_current_timezone()

    def render(value: datetime.datetime | None) -> str | None:
        if value is None:
            return None
        if value.tzinfo is None:  # cannot come from the database with USE_TZ; DRF decides
            return _datetime.to_representation(value)
        text = value.astimezone(tz).isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    return render


def read_snapshots(job_ids: Iterable[int]) -> dict[int, Snapshot]:
    """Snapshots of ``job_ids`` in one store call; ``{}`` (and one logged warning per
    outage) when the store cannot be reached."""
    ids = list(job_ids)
    if not ids:
        return {}
    store = get_progress_store()
    try:
        found = store.read_many(ids)
    except Exception as exc:
        store_health.failed(store, exc)
        return {}
    store_health.ok(store)
    return found


def refresh_vanished(rows: list[dict], snaps: dict[int, Snapshot]) -> list[dict]:
    """Rows read *before* the store (the list) for running jobs that have no snapshot: such a job
    may have ended between the two reads (the runner clears the store after recording the end),
    and its old row would show its progress going backwards. Re-read those that ended, in one
    query (none when every running job has a snapshot)."""
    vanished = [row["id"] for row in rows if row["state"] in JOB_STATES_RUNNING and row["id"] not in snaps]
    if not vanished:
        return rows
    ended = {
        row["id"]: row
        for row in Job._base_manager.filter(pk__in=vanished, state__in=JOB_STATES_ENDED).values(*SUMMARY_COLUMNS)
    }
    return [ended.get(row["id"], row) for row in rows] if ended else rows


def live_fields(state: str, percentage: int, label: str, snap: Snapshot | None) -> tuple[str, int, str, bool]:
    """``(state, progress_percentage, progress_state, cancel_requested)`` by the module's rule."""
    if state in JOB_STATES_ENDED or snap is None:
        return state, percentage, label, False
    return snap.state, snap.percentage, snap.label, snap.cancel_requested


def _types_by_model() -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    for job_type in job_type_registry.all():
        meta = job_type.model_class._meta
        out.setdefault((meta.app_label, meta.model_name), job_type.type)
    return out


def type_name(row: dict) -> str:
    """The job's registered type name; for a 0.1.1 row (empty ``type``) the type registered
    for its model, else ``""``."""
    if row["type"]:
        return row["type"]
    return _types_by_model().get((row["content_type__app_label"], row["content_type__model"]), "")


def types_filter(names: Iterable[str]) -> Q:
    """Rows of the given registered types, including 0.1.1 rows of their models (no extra query:
    the content type is matched through a join)."""
    names = list(names)
    query = Q(type__in=names)
    for name in names:
        meta = job_type_registry.get(name).model_class._meta
        query |= Q(type="", content_type__app_label=meta.app_label, content_type__model=meta.model_name)
    return query


def summary(row: dict, snap: Snapshot | None, dt: Callable | None = None) -> dict[str, Any]:
    """The list / event-stream representation of one row (from ``values(*SUMMARY_COLUMNS)``).
    ``dt`` is a :func:`datetime_renderer` (pass one made for the whole page).

    A superset of 0.1.1's ``JobSerializer`` output."""
    dt = dt or datetime_renderer()
    state, percentage, label, cancel = live_fields(
        row["state"], row["progress_percentage"], row["progress_state"], snap
    )
    return {
        "id": row["id"],
        "type": type_name(row),
        "state": state,
        "progress_percentage": percentage,
        "progress_state": label,
        "cancel_requested": cancel,
        "error": row["error"],
        "human_readable_error": row["human_readable_error"],
        "created_at": dt(row["created_at"]),
        "updated_at": dt(row["updated_at"]),
        "started_at": dt(row["started_at"]),
        "finished_at": dt(row["finished_at"]),
        "queue": row["queue"],
        "priority": row["priority"],
        "attempts": row["attempts"],
        "user": row["user_id"],
    }


def detail(row: dict, snap: Snapshot | None, values: dict[str, Any]) -> dict[str, Any]:
    """The detail representation: the summary plus ``run_after``, ``result`` and ``values``
    (the fields of the type's own model)."""
    dt = datetime_renderer()
    out = summary(row, snap, dt)
    out["run_after"] = dt(row["run_after"])
    out["result"] = row["result"]
    out["values"] = values
    return out


def type_values(row: dict) -> dict[str, Any]:
    """The fields the job's type adds to ``Job`` (its model's own columns), in one query;
    ``{}`` for a type whose model is ``Job`` itself or is no longer registered."""
    name = type_name(row)
    if name not in job_type_registry:
        return {}
    model = job_type_registry.get(name).model_class
    fields = own_fields(model)
    if not fields:
        return {}
    found = model._base_manager.filter(pk=row["id"]).values(*(f.attname for f in fields)).first() or {}
    return {f.attname: json_value(found.get(f.attname)) for f in fields}


def subclass_paths() -> dict[type[Job], tuple[str, tuple[str, ...]]]:
    """For each registered type's model that is a concrete subclass of ``Job``: the
    ``select_related`` path from ``Job`` down to it and the attribute chain that reaches its
    instance, so one query loads a job of any type with its own fields (LEFT JOINs on the
    primary key). Proxy models are left out (they have no table of their own)."""
    out: dict[type[Job], tuple[str, tuple[str, ...]]] = {}
    for job_type in job_type_registry.all():
        model = job_type.model_class
        if model is Job or model in out or model._meta.proxy:
            continue
        names: list[str] = []
        accessors: list[str] = []
        current = model
        while current is not Job:
            parent, link = next(
                (p, f) for p, f in current._meta.parents.items() if f is not None and issubclass(p, Job)
            )
            names.append(link.related_query_name())
            accessors.append(link.remote_field.get_accessor_name())
            current = parent
        out[model] = ("__".join(reversed(names)), tuple(reversed(accessors)))
    return out


def own_fields(model: type[Job]) -> list:
    """Concrete fields of ``model`` that ``Job`` does not have, without parent links."""
    base = {f.attname for f in Job._meta.concrete_fields}
    return [
        f
        for f in model._meta.concrete_fields
        if f.attname not in base and not (f.remote_field is not None and getattr(f.remote_field, "parent_link", False))
    ]


def json_value(value: Any) -> Any:
    # DRF's JSON encoder handles dates, decimals, UUIDs; anything else exotic becomes its text.
    if value is None or isinstance(
        value, str | int | float | bool | list | dict | datetime.date | datetime.time | decimal.Decimal | uuid.UUID
    ):
        return value
    return str(value)
