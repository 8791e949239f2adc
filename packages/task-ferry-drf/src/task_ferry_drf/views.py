"""The job endpoints. Mount them with ``include("task_ferry_drf.urls")``; see the README
for each endpoint's request, response and status codes.

Common to every job endpoint:

* authentication is required (``IsAuthenticated``, plus whatever
  ``DEFAULT_PERMISSION_CLASSES`` adds); the authentication classes are DRF's
  ``DEFAULT_AUTHENTICATION_CLASSES``, so session auth keeps its CSRF check;
* a job the caller may not see answers exactly like a job that does not exist
  (404 ``{"detail": "Job not found."}``) -- see :mod:`task_ferry_drf.permissions`;
* throttling: DRF's ``DEFAULT_THROTTLE_CLASSES`` apply; with
  ``ScopedRateThrottle`` the scopes are ``task_ferry_read`` (list, detail, logs),
  ``task_ferry_write`` (create, cancel, retry), ``task_ferry_events`` and
  ``task_ferry_health``. A scope without a rate is not throttled.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.handlers.asgi import ASGIRequest
from django.db import DataError, IntegrityError, router
from django.db.models import Q
from django.db.models.signals import pre_save
from django.http import StreamingHttpResponse
from django.urls import reverse
from rest_framework import exceptions, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.utils.urls import remove_query_param, replace_query_param
from rest_framework.views import APIView

from task_ferry import signals
from task_ferry.exceptions import (
    JobDoesNotExist,
    JobNotCancellable,
    JobNotRetryable,
    JobTypeNotRegistered,
    MaxJobCountExceeded,
)
from task_ferry.handler import JobHandler
from task_ferry.models import Job
from task_ferry.registry import job_type_registry

from . import compiled, sse
from ._schema import OpenApiExample, OpenApiParameter, OpenApiResponse, OpenApiTypes, extend_schema
from .live import (
    DETAIL_COLUMNS,
    MAX_JOB_ID,
    datetime_renderer,
    detail,
    json_value,
    live_rows,
    own_fields,
    read_snapshots,
    renders_timestamps_in_sql,
    subclass_paths,
    summary,
    summary_rows,
    summary_values,
    type_name,
    type_values,
    types_filter,
    with_content_type_names,
)
from .permissions import default_view_policy, has_permission, sees_all
from .serializers import (
    CreateJobSerializer,
    Cursor,
    ErrorSerializer,
    JobDetailSerializer,
    JobSerializer,
    ListQuerySerializer,
    LogPageSerializer,
    LogQuerySerializer,
)

NOT_FOUND = "Job not found."

#: Fields of the base job that ``values`` may not set: they belong to the lifecycle, the owner
#: or the dispatch (a type's ``prepare_values`` may still set queue, priority or run_after).
PROTECTED_FIELDS = frozenset(
    {"pk"} | {f.name for f in Job._meta.concrete_fields} | {f.attname for f in Job._meta.concrete_fields}
)


class FerryView(APIView):
    """Base of the job endpoints: authentication required, DRF's settings respected."""

    throttle_scope = "task_ferry_read"

    def get_permissions(self):
        # Read at request time, so a project-wide permission (say IsAdminUser) applies on top.
        return [IsAuthenticated(), *(cls() for cls in api_settings.DEFAULT_PERMISSION_CLASSES)]

    def get_throttles(self):
        throttles = []
        for cls in self.throttle_classes:
            throttle = cls()
            # DRF raises ImproperlyConfigured for a scope without a rate; leave such a scope unthrottled.
            if isinstance(throttle, ScopedRateThrottle) and self.throttle_scope not in throttle.THROTTLE_RATES:
                continue
            throttles.append(throttle)
        return throttles


def _not_found() -> exceptions.NotFound:
    return exceptions.NotFound(NOT_FOUND)


def visible_job(request, job_id: int) -> tuple[Job, Any]:
    """The job (an instance of its type's model) and its type, if ``request.user`` may see it;
    else the same 404 as for an id that does not exist. One query: the row, its content type
    and the fields of every registered subclass table, joined on the primary key."""
    if job_id > MAX_JOB_ID:
        raise _not_found()
    user = request.user
    paths = subclass_paths()
    query = Job._base_manager.select_related("content_type", *(path for path, _ in paths.values()))
    query = query.filter(pk=job_id)
    if not sees_all(user):
        query = query.filter(user_id=user.pk)
    try:
        base = query.get()
    except Job.DoesNotExist:
        raise _not_found() from None
    ct = base.content_type
    name = base.type or type_name(
        {"type": "", "content_type__app_label": ct.app_label, "content_type__model": ct.model}
    )
    job_type = job_type_registry.get(name) if name in job_type_registry else None
    model = job_type.model_class if job_type is not None else ct.model_class()
    job = base
    if model is not None and model is not Job and issubclass(model, Job):
        job = _descend(base, paths[model][1]) if model in paths else None
        if job is None:  # a proxy model, or a type registered after its rows were written elsewhere
            job = model._base_manager.filter(pk=job_id).first() or base
        job.content_type = ct  # already loaded: no query when rendering
    if not has_permission(job_type, user, "view", job):
        raise _not_found()
    return job, job_type


#: Returned by :func:`fast_detail` when the job does not exist or the caller may not see it.
HIDDEN = object()


def _detail_query(staff: bool, paths: dict) -> tuple[Any, dict[str, Any]]:
    """The detail's one query as ``values()``: every column of the row, its content type and
    the own fields of every registered subclass (each table's primary key too, to tell a
    missing row)."""
    base = (c for c in DETAIL_COLUMNS if not c.startswith("content_type__"))
    columns = list(dict.fromkeys([*base, *(f.attname for f in Job._meta.concrete_fields)]))
    for model, (path, _) in paths.items():
        columns.append(f"{path}__pk")
        columns.extend(f"{path}__{f.attname}" for f in own_fields(model))
    slots = {"pk": compiled.slot_for(Job._meta.pk)}
    query = Job._base_manager.filter(pk=slots["pk"])
    if not staff:
        slots["user"] = compiled.slot_for(Job._meta.get_field("user"))
        query = query.filter(user_id=slots["user"])
    return query.order_by().values(*columns), slots


def _instance(model: type[Job], row: dict, own: dict, alias: str) -> Job:
    """The job as an instance of ``model``, made from the detail query's row (no query)."""
    fields = model._meta.concrete_fields
    values = [
        own[f.attname] if f.attname in own else row[f.attname] if f.attname in row else row["id"]  # a parent link
        for f in fields
    ]
    job = model.from_db(alias, [f.attname for f in fields], values)
    if row["content_type_id"] is not None:
        job.content_type = ContentType.objects.db_manager(alias).get_for_id(row["content_type_id"])
    return job


def fast_detail(user, job_id: int) -> tuple[dict, dict] | object | None:
    """The detail's row and the type's own values, read with SQL compiled once per process
    (one query, as :func:`visible_job`), or :data:`HIDDEN` for a job the caller may not
    see (or that does not exist), or None when only :func:`visible_job` can tell (a proxy
    model, a row missing from its type's table)."""
    staff = sees_all(user)
    paths = subclass_paths()
    alias = router.db_for_read(Job)
    key = ("detail", alias, staff, tuple((model, path) for model, (path, _) in paths.items()))
    read = compiled.compiled(key, lambda: _detail_query(staff, paths))
    if read is None:
        return None
    rows = read.rows(pk=job_id) if staff else read.rows(pk=job_id, user=user.pk)
    if not rows:
        return HIDDEN
    row = with_content_type_names(rows, alias)[0]
    name = type_name(row)
    job_type = job_type_registry.get(name) if name in job_type_registry else None
    if job_type is not None:
        model = job_type.model_class
    else:  # as visible_job: the content type's model, None if it no longer exists
        model = ContentType.objects.db_manager(alias).get_for_id(row["content_type_id"]).model_class()
    if model is None or not issubclass(model, Job) or model is Job:
        model, own = Job, {}
    elif model in paths and row[f"{paths[model][0]}__pk"] is not None:
        path = paths[model][0]
        own = {f.attname: row[f"{path}__{f.attname}"] for f in own_fields(model)}
    else:
        return None
    if not default_view_policy(job_type) and not has_permission(
        job_type, user, "view", _instance(model, row, own, alias)
    ):
        return HIDDEN
    return row, {name: json_value(value) for name, value in own.items()}


def _descend(job: Job, accessors: tuple[str, ...]) -> Job | None:
    try:
        for name in accessors:
            job = getattr(job, name)
    except ObjectDoesNotExist:
        return None
    return job


def render_job(job_id: int) -> dict:
    """The detail JSON of a job the caller may see, read now (store first, then the row)."""
    snap = read_snapshots([job_id]).get(job_id)
    row = Job._base_manager.filter(pk=job_id).values(*DETAIL_COLUMNS).first()
    if row is None:
        raise _not_found()
    return detail(row, snap, type_values(row))


def _values_of(job: Job) -> dict:
    return {f.attname: json_value(getattr(job, f.attname)) for f in own_fields(type(job))}


# ── Capture of jobs created during a call (the immediate executor raises a failed job's error) ──

_capture = threading.local()


@contextmanager
def _capturing():
    _capture.jobs = []
    try:
        yield _capture.jobs
    finally:
        _capture.jobs = None


def _on_job(sender, job, **kwargs) -> None:
    jobs = getattr(_capture, "jobs", None)
    if jobs is not None:
        jobs.append(job)


def _validate_own_fields(sender, instance, raw=False, **kwargs) -> None:
    """Check the prepared values of a job being created through the API against its model's
    fields (max_length, ranges, choices, types), so they answer 400 with field errors instead of
    failing in the database. Empty values are left to the database and the model's defaults."""
    if getattr(_capture, "jobs", None) is None or not isinstance(instance, Job) or not instance._state.adding:
        return
    errors: dict[str, list[str]] = {}
    for field in own_fields(type(instance)):
        value = getattr(instance, field.attname)
        if value in field.empty_values:
            continue
        try:
            setattr(instance, field.attname, field.clean(value, instance))
        except DjangoValidationError as exc:
            errors[field.name] = exc.messages
    if errors:
        raise DjangoValidationError(errors)


signals.job_created.connect(_on_job, dispatch_uid="task_ferry_drf.capture_created", weak=False)
signals.job_retried.connect(_on_job, dispatch_uid="task_ferry_drf.capture_retried", weak=False)
pre_save.connect(_validate_own_fields, dispatch_uid="task_ferry_drf.validate_own_fields", weak=False)


def _value_errors(exc: BaseException) -> Any:
    """Field errors (a dict) or messages (a list) for a rejected ``values``; None if ``exc`` is
    not a validation problem."""
    if isinstance(exc, exceptions.ValidationError):
        return exc.detail
    if isinstance(exc, DjangoValidationError):
        return exc.message_dict if hasattr(exc, "error_dict") else exc.messages
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        return {exc.args[0]: ["This field is required."]}
    if isinstance(exc, ValueError | TypeError):
        return [str(exc) or type(exc).__name__]
    if isinstance(exc, DataError | IntegrityError | OverflowError):
        first_line = (str(exc) or type(exc).__name__).splitlines()[0]
        return [f"A value cannot be stored: {first_line}"]
    return None


def _conflict(exc: MaxJobCountExceeded) -> Response:
    return Response({"detail": str(exc), "code": "max_count_exceeded"}, status=status.HTTP_409_CONFLICT)


# ── Schema fragments ───────────────────────────────────────────────────────────

_JOB_ID = OpenApiParameter(
    "job_id", {"type": "integer", "minimum": 0}, OpenApiParameter.PATH, description="The job's id."
)
_ERRORS = {
    401: OpenApiResponse(ErrorSerializer, description="Not authenticated."),
    403: OpenApiResponse(
        ErrorSerializer,
        description="Not allowed (authentication scheme without a challenge, or the type's permission hook).",
    ),
    404: OpenApiResponse(ErrorSerializer, description="No such job, or not the caller's."),
    429: OpenApiResponse(ErrorSerializer, description="Throttled."),
}
_PAGE_HEADERS = [
    OpenApiParameter(
        "X-Total-Count",
        int,
        OpenApiParameter.HEADER,
        response=[200],
        description="Jobs matching the filters (offset pagination only).",
    ),
    OpenApiParameter(
        "Link",
        str,
        OpenApiParameter.HEADER,
        response=[200],
        description='RFC 8288 links to the `rel="next"` and `rel="prev"` pages.',
    ),
    OpenApiParameter(
        "X-Next-Cursor",
        str,
        OpenApiParameter.HEADER,
        response=[200],
        description="Cursor of the next page (cursor pagination only).",
    ),
]


def _event_schema() -> dict:
    """One server-sent event (schemathesis validates each event of a stream against it). OpenAPI
    3.1 can say that ``data`` holds a job's JSON; 3.0 has no keyword for it."""
    data: dict = {"type": "string", "description": "The job as listed, as JSON (see the Job schema)."}
    try:
        from drf_spectacular.settings import spectacular_settings

        if str(spectacular_settings.OAS_VERSION).startswith("3.1"):
            data.update(contentMediaType="application/json", contentSchema={"$ref": "#/components/schemas/Job"})
    except ImportError:
        pass
    return {
        "type": "object",
        "properties": {"event": {"type": "string", "enum": ["progress", "end"]}, "data": data},
        "required": ["event", "data"],
    }


_EVENT = _event_schema()
_EXAMPLE_JOB = {
    "id": 17,
    "type": "export_table",
    "state": "started",
    "progress_percentage": 43,
    "progress_state": "Writing row 430...",
    "cancel_requested": False,
    "error": "",
    "human_readable_error": "",
    "created_at": "2026-05-28T10:00:00Z",
    "updated_at": "2026-05-28T10:00:01Z",
    "started_at": "2026-05-28T10:00:01Z",
    "finished_at": None,
    "queue": "exports",
    "priority": 0,
    "attempts": 1,
    "user": 3,
}


# ── Endpoints ──────────────────────────────────────────────────────────────────


class _Page:
    """The list's query for validated parameters: the filters, the ordering and the cursor.
    :meth:`rows` reads a slice through SQL compiled once per process and shape (see
    :mod:`task_ferry_drf.compiled`), or through the ORM when the shape cannot be compiled."""

    def __init__(self, params: dict, owner: Any, hidden: tuple[str, ...]) -> None:
        self.ordering = params["ordering"]
        self.key = self.ordering.lstrip("-")
        self.descending = self.ordering.startswith("-")
        self.order_by = [self.ordering] if self.key == "id" else [self.ordering, "-id" if self.descending else "id"]
        self.hidden = hidden
        self.types = tuple(params.get("type") or ())
        #: The variable inputs by name: each is a slot of the compiled SQL.
        self.values: dict[str, Any] = {}
        if owner is not None:
            self.values["user"] = owner
        for n, state in enumerate(params.get("state") or ()):
            self.values[f"state{n}"] = state
        if "created_after" in params:
            self.values["after"] = params["created_after"]
        if "created_before" in params:
            self.values["before"] = params["created_before"]
        cursor = params.get("cursor")
        self.has_cursor = isinstance(cursor, Cursor)
        if self.has_cursor:
            self.values["last"] = cursor.last_id
            if self.key != "id":
                self.values["key"] = cursor.key

    def jobs(self, values: dict[str, Any]):
        """The filtered queryset, with ``values`` (real ones, or slots) for the inputs."""
        jobs = Job._base_manager.all()
        if "user" in values:
            jobs = jobs.filter(user_id=values["user"])
        if self.hidden:
            jobs = jobs.exclude(types_filter(self.hidden))
        states = [values[name] for name in values if name.startswith("state")]
        if states:
            jobs = jobs.filter(state__in=states)
        if self.types:
            jobs = jobs.filter(types_filter(self.types))
        if "after" in values:
            jobs = jobs.filter(created_at__gte=values["after"])
        if "before" in values:
            jobs = jobs.filter(created_at__lt=values["before"])
        if self.has_cursor:
            op = "lt" if self.descending else "gt"
            if self.key == "id":
                jobs = jobs.filter(**{f"id__{op}": values["last"]})
            else:
                key = values["key"]
                jobs = jobs.filter(Q(**{f"{self.key}__{op}": key}) | Q(**{self.key: key, f"id__{op}": values["last"]}))
        return jobs

    def _query(self, values: dict[str, Any], start: int, stop: int):
        return summary_values(self.jobs(values).order_by(*self.order_by))[start:stop]

    def _slots(self) -> dict[str, Any]:
        fields = {"user": "user", "last": "id", "key": self.key, "after": "created_at", "before": "created_at"}
        return {
            name: compiled.text_slot()
            if name.startswith("state")
            else compiled.slot_for(Job._meta.get_field(fields[name]))
            for name in self.values
        }

    def rows(self, start: int, stop: int) -> list[dict]:
        """``summary_rows`` of the rows ``start:stop``."""
        alias = router.db_for_read(Job)
        shape = (
            "list",
            alias,
            renders_timestamps_in_sql(alias),
            tuple(name for name in self.values if not name.startswith("state")),
            sum(name.startswith("state") for name in self.values),
            self.hidden,
            self.types,
            self.ordering,
            self.has_cursor,
            start,
            stop,
        )

        def build():
            slots = self._slots()
            return self._query(slots, start, stop), slots

        read = compiled.compiled(shape, build)
        if read is None:
            return summary_rows(self._query(self.values, start, stop), alias)
        return summary_rows(read.rows(**self.values), alias)


class JobListView(FerryView):
    """``GET /``: the caller's jobs, newest first; ``POST /``: create a job."""

    def get_throttles(self):
        self.throttle_scope = "task_ferry_write" if self.request.method == "POST" else "task_ferry_read"
        return super().get_throttles()

    @extend_schema(
        operation_id="task_ferry_jobs_list",
        parameters=[ListQuerySerializer, *_PAGE_HEADERS],
        responses={
            200: JobSerializer(many=True),
            400: OpenApiResponse(OpenApiTypes.OBJECT, description="A bad query parameter (named in the body)."),
            **_ERRORS,
        },
        examples=[OpenApiExample("A page", value=_EXAMPLE_JOB, response_only=True)],
    )
    def get(self, request):
        query = ListQuerySerializer.from_query(request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        user = request.user

        target = params.get("user")
        if target is not None and target != user.pk and not sees_all(user):
            raise exceptions.PermissionDenied("Only staff users can list other users' jobs.")
        owner = user.pk if target is None else None if target == "all" else target
        hidden = tuple(t.type for t in job_type_registry.all() if not has_permission(t, user, "view", None))
        page = _Page(params, owner, hidden)

        limit = params["limit"]
        cursor = params.get("cursor")
        headers: dict[str, str] = {}
        links: list[str] = []
        url = request.build_absolute_uri()

        if cursor is None:
            offset = params.get("offset", 0)
            # One row more than the page: when it does not come, the page is the last one and the
            # total is known without a COUNT (a list that fits in one page costs one query).
            rows = page.rows(offset, offset + limit + 1)
            last_page = len(rows) <= limit and (rows or not offset)
            total = offset + len(rows) if last_page else page.jobs(page.values).count()
            rows = rows[:limit]
            headers["X-Total-Count"] = str(total)
            if limit and offset + limit < total:
                links.append(f'<{replace_query_param(url, "offset", offset + limit)}>; rel="next"')
            if limit and offset:
                links.append(f'<{replace_query_param(url, "offset", max(offset - limit, 0))}>; rel="prev"')
        else:
            rows = page.rows(0, limit + 1) if limit else []
            if len(rows) > limit:
                rows = rows[:limit]
                token = Cursor(page.ordering, rows[-1][page.key], rows[-1]["id"]).encode()
                headers["X-Next-Cursor"] = token
                links.append(f'<{replace_query_param(remove_query_param(url, "offset"), "cursor", token)}>; rel="next"')
        if links:
            headers["Link"] = ", ".join(links)

        # An ended job shows its row whatever the store holds: the store is asked about the others
        # only (a page of ended jobs costs no round trip at all).
        dt = datetime_renderer()
        return Response([summary(row, live, dt) for row, live in live_rows(rows)], headers=headers)

    @extend_schema(
        operation_id="task_ferry_jobs_create",
        request=CreateJobSerializer,
        responses={
            201: JobDetailSerializer,
            400: OpenApiResponse(OpenApiTypes.OBJECT, description="Unknown type or rejected values (field errors)."),
            409: OpenApiResponse(
                ErrorSerializer, description="The type's max_count of pending/running jobs is reached."
            ),
            **_ERRORS,
        },
        examples=[
            OpenApiExample("Create", value={"type": "export_table", "values": {"table_id": 42}}, request_only=True),
        ],
    )
    def post(self, request):
        body = CreateJobSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        name, values = body.validated_data["type"], body.validated_data["values"]
        user = request.user
        if name not in job_type_registry:
            creatable = sorted(t.type for t in job_type_registry.all() if has_permission(t, user, "create", None))
            raise exceptions.ValidationError({"type": [f"Unknown job type {name!r}. Available: {creatable}."]})
        job_type = job_type_registry.get(name)
        if not has_permission(job_type, user, "create", None):
            raise exceptions.PermissionDenied(f"You may not create {name!r} jobs.")
        links = {n for f in _parent_links(job_type.model_class) for n in (f.name, f.attname)}
        protected = sorted(set(values) & (PROTECTED_FIELDS | links))
        if protected:
            raise exceptions.ValidationError(
                {"values": {key: ["This field cannot be set through the API."] for key in protected}}
            )

        with _capturing() as created:
            try:
                job = JobHandler.create_and_start(user, name, **values)
            except MaxJobCountExceeded as exc:
                return _conflict(exc)
            except Exception as exc:
                if not created:
                    errors = _value_errors(exc)
                    if errors is None:
                        raise
                    raise exceptions.ValidationError({"values": errors}) from exc
                # The job exists: the immediate executor ran it inline and re-raised its error.
                job = created[0]
        location = reverse(f"{request.resolver_match.namespace}:job-detail", args=[job.pk])
        return Response(
            render_job(job.pk),
            status=status.HTTP_201_CREATED,
            headers={"Location": request.build_absolute_uri(location)},
        )


def _parent_links(model) -> list:
    return [f for f in model._meta.concrete_fields if f.remote_field is not None and f.remote_field.parent_link]


class JobDetailView(FerryView):
    """``GET /<id>/``: one job, for polling."""

    @extend_schema(
        operation_id="task_ferry_jobs_retrieve",
        parameters=[_JOB_ID],
        responses={200: JobDetailSerializer, **_ERRORS},
    )
    def get(self, request, job_id: int):
        if job_id > MAX_JOB_ID:
            raise _not_found()
        # Store before row: a job ending between the two reads shows its final database state.
        snap = read_snapshots([job_id]).get(job_id)
        found = fast_detail(request.user, job_id)
        if found is HIDDEN:
            raise _not_found()
        if found is None:
            job, _ = visible_job(request, job_id)
            return Response(detail(_row_of(job), snap, _values_of(job)))
        row, values = found
        return Response(detail(row, snap, values))


def _row_of(job: Job) -> dict:
    """The ``values(*DETAIL_COLUMNS)`` dict of a job instance already loaded (with its content type)."""
    ct = job.content_type
    row = {c: getattr(job, c) for c in DETAIL_COLUMNS if "__" not in c}
    row["content_type__app_label"], row["content_type__model"] = ct.app_label, ct.model
    return row


class JobCancelView(FerryView):
    """``POST /<id>/cancel/``: cancel a pending or running job (idempotent for a cancelled one)."""

    throttle_scope = "task_ferry_write"

    @extend_schema(
        operation_id="task_ferry_jobs_cancel",
        request=None,
        parameters=[_JOB_ID],
        responses={
            200: JobDetailSerializer,
            400: OpenApiResponse(ErrorSerializer, description="The job has already finished or failed."),
            **_ERRORS,
        },
    )
    def post(self, request, job_id: int):
        job, job_type = visible_job(request, job_id)
        if not has_permission(job_type, request.user, "cancel", job):
            raise exceptions.PermissionDenied("You may not cancel this job.")
        try:
            JobHandler.cancel(None, job.pk)
        except JobDoesNotExist:
            raise _not_found() from None
        except JobNotCancellable as exc:
            return Response({"detail": str(exc), "code": "not_cancellable"}, status=status.HTTP_400_BAD_REQUEST)
        return Response(render_job(job.pk))


class JobRetryView(FerryView):
    """``POST /<id>/retry/``: run a failed or cancelled job again (same job, next attempt)."""

    throttle_scope = "task_ferry_write"

    @extend_schema(
        operation_id="task_ferry_jobs_retry",
        request=None,
        parameters=[_JOB_ID],
        responses={
            200: JobDetailSerializer,
            400: OpenApiResponse(ErrorSerializer, description="The job is not failed or cancelled."),
            409: OpenApiResponse(
                ErrorSerializer, description="The type's max_count of pending/running jobs is reached."
            ),
            **_ERRORS,
        },
    )
    def post(self, request, job_id: int):
        job, job_type = visible_job(request, job_id)
        if not has_permission(job_type, request.user, "retry", job):
            raise exceptions.PermissionDenied("You may not retry this job.")
        if job_type is None:
            return Response(
                {"detail": f"Job {job.pk}'s type {job.type!r} is no longer registered.", "code": "not_retryable"},
                status=status.HTTP_400_BAD_REQUEST,
            )
        with _capturing() as retried:
            try:
                JobHandler.retry(job)
            except MaxJobCountExceeded as exc:
                return _conflict(exc)
            except (JobNotRetryable, JobTypeNotRegistered) as exc:
                return Response({"detail": str(exc), "code": "not_retryable"}, status=status.HTTP_400_BAD_REQUEST)
            except Exception:
                if not retried:
                    raise
                # Retried and run inline by the immediate executor, which re-raised the job's error.
        return Response(render_job(job.pk))


class JobLogsView(FerryView):
    """``GET /<id>/logs/``: a page of the job's log lines, oldest first (core's
    ``JobHandler.get_logs``), by cursor (``after``) or page number (``page``)."""

    @extend_schema(
        operation_id="task_ferry_jobs_logs",
        parameters=[_JOB_ID, LogQuerySerializer],
        responses={
            200: LogPageSerializer,
            400: OpenApiResponse(OpenApiTypes.OBJECT, description="A bad query parameter (named in the body)."),
            **_ERRORS,
        },
        examples=[
            OpenApiExample(
                "A page",
                response_only=True,
                value={
                    "results": [
                        {
                            "seq": 1,
                            "level": "info",
                            "message": "Reading table 42",
                            "logger": "",
                            "created_at": "2026-05-28T10:00:01.004211Z",
                        }
                    ],
                    "has_more": True,
                    "next_after": 1,
                    "next": "https://example.com/api/jobs/17/logs/?after=1",
                },
            )
        ],
    )
    def get(self, request, job_id: int):
        query = LogQuerySerializer.from_query(request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        job, _ = visible_job(request, job_id)
        page = JobHandler.get_logs(
            job.pk, after=params.get("after"), page=params.get("page"), page_size=params["page_size"]
        )
        dt = datetime_renderer()
        next_url = None
        if page.has_more:
            url = remove_query_param(request.build_absolute_uri(), "page")
            next_url = replace_query_param(url, "after", page.next_after)
        return Response(
            {
                "results": [
                    {
                        "seq": line.seq,
                        "level": line.level,
                        "message": line.message,
                        "logger": line.logger,
                        "created_at": dt(line.created_at),
                    }
                    for line in page.lines
                ],
                "has_more": page.has_more,
                "next_after": page.next_after,
                "next": next_url,
            }
        )


class EventStreamRenderer(BaseRenderer):
    """Lets clients that accept only ``text/event-stream`` (an ``EventSource``) reach the stream.
    Errors are never rendered with it: they are JSON, whatever the client accepts."""

    media_type = "text/event-stream"
    format = "event-stream"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        raise NotImplementedError("the event stream is a StreamingHttpResponse, not rendered data")


class JobEventsView(FerryView):
    """``GET /<id>/events/``: server-sent events of the job's progress until it ends (see
    :mod:`task_ferry_drf.sse`)."""

    throttle_scope = "task_ferry_events"

    def get_renderers(self):
        return [*super().get_renderers(), EventStreamRenderer()]

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        # Errors (404, 401, ...) are JSON even for a client that accepts only the stream.
        self.request.accepted_renderer, self.request.accepted_media_type = JSONRenderer(), JSONRenderer.media_type
        return response

    @extend_schema(
        operation_id="task_ferry_jobs_events",
        parameters=[_JOB_ID],
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                _EVENT, description="`event: progress` messages, then one `event: end`; data is a job as listed."
            ),
            **{(code, "application/json"): response for code, response in _ERRORS.items()},
        },
    )
    def get(self, request, job_id: int):
        job, _ = visible_job(request, job_id)
        # Under ASGI an async iterator: Django would otherwise buffer a sync one whole.
        asgi = isinstance(request._request, ASGIRequest)
        content = sse.astream(job.pk) if asgi else sse.stream(job.pk)
        response = StreamingHttpResponse(content, content_type="text/event-stream; charset=utf-8")
        response["Cache-Control"] = "no-cache"
        # nginx would otherwise buffer the stream.
        response["X-Accel-Buffering"] = "no"
        return response
