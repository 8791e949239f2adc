"""The live view of jobs: database rows merged with progress-store snapshots,
by core's rule (:mod:`task_ferry.live`), used by every endpoint and the event
stream:

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
about), so core's :func:`task_ferry.live.live_rows` re-reads, once, running
rows left without a snapshot.
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import connections
from django.db.models import CharField, Func, Q, QuerySet
from django.utils import timezone
from rest_framework import ISO_8601, serializers
from rest_framework.settings import api_settings

from task_ferry import live as core_live
from task_ferry.live import LiveProgress
from task_ferry.models import Job
from task_ferry.protocols import Snapshot
from task_ferry.registry import job_type_registry

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

    def render(value: datetime.datetime | str | None) -> str | None:
        if value is None or value.__class__ is str:  # str: rendered by the query (summary_values)
            return value
        if value.tzinfo is None:  # cannot come from the database with USE_TZ; DRF decides
            return _datetime.to_representation(value)
        text = value.astimezone(tz).isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    return render


class _UtcIsoText(Func):
    """PostgreSQL: a ``timestamptz`` as the text DRF renders for it in UTC, without the ``Z``
    (``2026-05-28T10:00:00.123456``; ``to_char`` ignores the session's ``DateStyle``)."""

    template = """to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')"""
    output_field = CharField()


#: The timestamps among SUMMARY_COLUMNS.
_TIMESTAMPS = ("created_at", "updated_at", "started_at", "finished_at")
#: The content type's names come from Django's per-process content-type cache, not a join
#: (on PostgreSQL the join was about a third of the detail query's time).
_CT_NAMES = ("content_type__app_label", "content_type__model")
_PLAIN_COLUMNS = (*(c for c in SUMMARY_COLUMNS if c not in _TIMESTAMPS and c not in _CT_NAMES), "content_type_id")
_TEXT_KEYS = tuple(f"ferry_text_{name}" for name in _TIMESTAMPS)


def with_content_type_names(rows: list[dict], alias: str) -> list[dict]:
    """Fill each row's ``content_type__app_label`` / ``content_type__model`` from its
    ``content_type_id`` through ``ContentType.objects.get_for_id`` (cached per process:
    no query once a content type has been seen)."""
    manager = ContentType.objects.db_manager(alias)
    for row in rows:
        ct = manager.get_for_id(row["content_type_id"])
        row["content_type__app_label"], row["content_type__model"] = ct.app_label, ct.model
    return rows


def renders_timestamps_in_sql(alias: str) -> bool:
    return connections[alias].vendor == "postgresql" and settings.USE_TZ and api_settings.DATETIME_FORMAT == ISO_8601


def summary_values(jobs: QuerySet) -> QuerySet:
    """``jobs.values(*SUMMARY_COLUMNS)``, to be read with :func:`summary_rows`.

    On PostgreSQL, when DRF renders datetimes as ISO 8601 (its default), the database
    writes the four timestamps as UTC text: Django's PostgreSQL loader parses every
    timestamp into a ``datetime`` in Python, which for the ~750 timestamps of a 200-job
    page is about a third of the page's CPU time. A cursor made from such a row's text
    decodes to the same instant."""
    if renders_timestamps_in_sql(jobs.db):
        return jobs.values(*_PLAIN_COLUMNS, **{key: _UtcIsoText(name) for key, name in zip(_TEXT_KEYS, _TIMESTAMPS)})
    return jobs.values(*_PLAIN_COLUMNS, *_TIMESTAMPS)


def _utc_text_renderer() -> Callable[[str], str]:
    """Renders ``to_char``'s UTC text as DRF renders the datetime (current time zone, ``Z``
    for UTC, no fraction when it is zero)."""
    tz = timezone.get_current_timezone()
    if tz is datetime.UTC or getattr(tz, "key", None) in ("UTC", "Etc/UTC"):
        # isoformat() leaves out a zero fraction; to_char's US always writes six digits.
        return lambda text: (text[:-7] if text.endswith(".000000") else text) + "Z"
    parse = datetime.datetime.fromisoformat

    def render(text: str) -> str:
        out = parse(text + "+00:00").astimezone(tz).isoformat()
        return out[:-6] + "Z" if out.endswith("+00:00") else out

    return render


def summary_rows(values: Iterable[dict], alias: str) -> list[dict]:
    """The rows of a :func:`summary_values` query on database ``alias``, each with the keys of
    ``SUMMARY_COLUMNS`` (timestamps as ``datetime``, or as DRF's text when the query wrote them)."""
    rows = with_content_type_names(list(values), alias)
    if rows and _TEXT_KEYS[0] in rows[0]:
        render = _utc_text_renderer()
        for row in rows:
            for key, name in zip(_TEXT_KEYS, _TIMESTAMPS):
                text = row.pop(key)
                row[name] = None if text is None else render(text)
    return rows


def read_snapshots(job_ids: Iterable[int]) -> dict[int, Snapshot]:
    """Snapshots of ``job_ids`` in one store call; ``{}`` (and one logged warning per
    outage) when the store cannot be reached."""
    return core_live.read_snapshots(job_ids, core_live.log_store_error)


def live_rows(rows: list[dict]) -> list[tuple[dict, LiveProgress]]:
    """A page of ``values(*SUMMARY_COLUMNS)`` rows with their live values (core's
    :func:`~task_ferry.live.live_rows`; a store outage degrades to database values)."""
    return core_live.live_rows(rows, core_live.log_store_error, SUMMARY_COLUMNS)


def live_of(row: dict, snap: Snapshot | None) -> LiveProgress:
    """The live values of one row and its snapshot (read before the row)."""
    return core_live.live_values(row["state"], row["progress_percentage"], row["progress_state"], snap)


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


def summary(row: dict, live: LiveProgress, dt: Callable | None = None) -> dict[str, Any]:
    """The list / event-stream representation of one row (from ``values(*SUMMARY_COLUMNS)``)
    and its live values. ``dt`` is a :func:`datetime_renderer` (pass one made for the whole page).

    A superset of 0.1.1's ``JobSerializer`` output."""
    dt = dt or datetime_renderer()
    return {
        "id": row["id"],
        "type": type_name(row),
        "state": live.state,
        "progress_percentage": live.percentage,
        "progress_state": live.label,
        "cancel_requested": live.cancel_requested,
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
    out = summary(row, live_of(row, snap), dt)
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
