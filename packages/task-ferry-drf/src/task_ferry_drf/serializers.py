"""Request parsing and the documented response shapes.

Responses are built as plain dicts by :mod:`task_ferry_drf.live` (a list page of
200 jobs through a ``ModelSerializer`` costs more than the queries do); the
serializers here describe those shapes for the OpenAPI schema, and the
schemathesis run in the test suite proves that every response matches them.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
from dataclasses import dataclass
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from rest_framework import serializers

from task_ferry.registry import job_type_registry
from task_ferry.states import ALL_STATES

from . import conf
from .live import MAX_JOB_ID

#: ``ordering`` values: a timestamp or the id, ascending or descending (``-``). Ties are
#: broken by the id in the same direction, which is what makes cursors exact.
ORDERINGS = ("-created_at", "created_at", "-updated_at", "updated_at", "-id", "id")
MAX_OFFSET = 2**31 - 1


# ── Query parameters of the list ────────────────────────────────────────────────


class _CommaList(serializers.CharField):
    """A comma-separated list; repeated parameters are joined (``?state=a&state=b``, see
    :meth:`ListQuerySerializer.from_query`)."""

    def to_internal_value(self, data):
        text = super().to_internal_value(data)
        return list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))


class _Instant(serializers.CharField):
    """An ISO 8601 date-time (``2026-05-28T10:00:00Z``) or date (``2026-05-28``, midnight in the
    current time zone); without an offset, the current time zone."""

    def to_internal_value(self, data):
        text = super().to_internal_value(data)
        try:
            value = parse_datetime(text)
            if value is None:
                day = parse_date(text)
                if day is None:
                    raise ValueError
                value = datetime.datetime.combine(day, datetime.time())
            if timezone.is_naive(value):
                value = timezone.make_aware(value)
            # Normalise now: a far-off year with an offset fails here (a 400), not in the database.
            return value.astimezone(datetime.UTC)
        except (ValueError, TypeError, OverflowError):
            raise serializers.ValidationError(
                "Enter an ISO 8601 date-time such as 2026-05-28T10:00:00Z, or a date such as 2026-05-28."
            ) from None


@dataclass(frozen=True)
class Cursor:
    """Position after the last job of a page, for ``ordering``."""

    ordering: str
    key: Any
    last_id: int

    def encode(self) -> str:
        key = self.key.isoformat() if isinstance(self.key, datetime.datetime) else self.key
        raw = json.dumps({"o": self.ordering, "k": key, "i": self.last_id}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            ordering, key, last_id = data["o"], data["k"], data["i"]
            if ordering not in ORDERINGS or type(last_id) is not int or not 0 < last_id <= MAX_JOB_ID:
                raise ValueError
            if ordering.lstrip("-") == "id":
                key = last_id
            else:
                key = parse_datetime(key) if isinstance(key, str) else None
                if key is None or timezone.is_naive(key):
                    raise ValueError
            return cls(ordering, key, last_id)
        except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError, OverflowError):
            raise serializers.ValidationError(
                "Invalid cursor; use the one from the previous page's Link header."
            ) from None


class ListQuerySerializer(serializers.Serializer):
    """Query parameters of ``GET /``. Unknown parameters are ignored; a bad value of a known
    one (an empty one included, except for ``state``, ``type`` and ``cursor``) is a 400 naming
    the parameter. Build it with :meth:`from_query`."""

    LISTS = ("state", "type")

    @classmethod
    def from_query(cls, query) -> ListQuerySerializer:
        # A plain dict, not the QueryDict: DRF reads an empty value in form data as "not given",
        # and `?limit=` is a mistake to report, not a default to apply.
        data = {name: ",".join(query.getlist(name)) if name in cls.LISTS else query[name] for name in query}
        return cls(data={name: value for name, value in data.items() if name in cls._declared_fields})

    state = _CommaList(required=False, allow_blank=True, help_text=f"Comma-separated states: {', '.join(ALL_STATES)}.")
    type = _CommaList(required=False, allow_blank=True, help_text="Comma-separated registered job type names.")
    created_after = _Instant(
        required=False, help_text="Only jobs created at or after this ISO 8601 date-time (or date)."
    )
    created_before = _Instant(required=False, help_text="Only jobs created before this ISO 8601 date-time (or date).")
    ordering = serializers.ChoiceField(
        choices=ORDERINGS, required=False, help_text="Sort key; `-` for descending. Default `-created_at`."
    )
    limit = serializers.IntegerField(
        required=False,
        min_value=0,
        help_text="Page size (default PAGE_SIZE, 50); values above MAX_PAGE_SIZE (200) are capped.",
    )
    offset = serializers.IntegerField(
        required=False, min_value=0, max_value=MAX_OFFSET, help_text="Jobs to skip (offset pagination)."
    )
    cursor = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="Cursor pagination: empty for the first page, then the value from the `Link: rel=next` "
        "header. No total count is computed.",
    )
    user = serializers.CharField(
        required=False,
        help_text="Staff only: `all`, or a user id, to list other users' jobs. Default: the caller's jobs.",
    )

    def validate_state(self, value: list[str]) -> list[str]:
        unknown = [s for s in value if s not in ALL_STATES]
        if unknown:
            raise serializers.ValidationError(f"Unknown state(s) {unknown}; states are {', '.join(ALL_STATES)}.")
        return value

    def validate_type(self, value: list[str]) -> list[str]:
        unknown = [t for t in value if t not in job_type_registry]
        if unknown:
            raise serializers.ValidationError(f"Unknown job type(s) {unknown}.")
        return value

    def validate_cursor(self, value: str) -> Cursor | str:
        return Cursor.decode(value) if value else ""

    def validate_user(self, value: str) -> str | int:
        if value == "all":
            return value
        if not (value.isascii() and value.isdigit()) or not 0 < int(value) <= MAX_JOB_ID:
            raise serializers.ValidationError("Expected `all` or a user id.")
        return int(value)

    def validate(self, attrs: dict) -> dict:
        cursor = attrs.get("cursor")
        if cursor is not None and "offset" in attrs:
            raise serializers.ValidationError({"offset": ["Use either offset or cursor, not both."]})
        if isinstance(cursor, Cursor):
            if "ordering" in attrs and attrs["ordering"] != cursor.ordering:
                raise serializers.ValidationError({"ordering": ["The cursor was made for another ordering."]})
            attrs["ordering"] = cursor.ordering
        attrs.setdefault("ordering", "-created_at")
        limit = attrs.get("limit", conf.get("PAGE_SIZE"))
        attrs["limit"] = min(limit, conf.get("MAX_PAGE_SIZE"))
        return attrs


# ── Query parameters of the logs ────────────────────────────────────────────────

#: Largest ``page_size`` core's ``get_logs`` serves, whatever ``MAX_PAGE_SIZE`` says.
MAX_LOG_PAGE_SIZE = 1000
#: Lines per page when ``page_size`` is not given (then capped by ``MAX_PAGE_SIZE`` too).
DEFAULT_LOG_PAGE_SIZE = 100


class LogQuerySerializer(serializers.Serializer):
    """Query parameters of ``GET /<id>/logs/``: ``after`` (a cursor) or ``page`` (a number),
    not both, and ``page_size``. Unknown parameters are ignored; a bad value (an empty one
    included) is a 400 naming the parameter."""

    @classmethod
    def from_query(cls, query) -> LogQuerySerializer:
        # A plain dict, as for the list: `?after=` is a mistake to report, not "not given".
        return cls(data={name: query[name] for name in query if name in cls._declared_fields})

    after = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=MAX_JOB_ID,
        help_text="Cursor: only lines with a `seq` above this one (the previous page's `next_after`).",
    )
    page = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_OFFSET,
        help_text="Page number, from 1 (default 1). Not with `after`.",
    )
    page_size = serializers.IntegerField(
        required=False,
        min_value=1,
        help_text=f"Lines per page (default {DEFAULT_LOG_PAGE_SIZE}); values above MAX_PAGE_SIZE (200) are capped.",
    )

    def validate(self, attrs: dict) -> dict:
        if "after" in attrs and "page" in attrs:
            raise serializers.ValidationError(
                {"page": ["Use either after (a cursor) or page (a page number), not both."]}
            )
        size = attrs.get("page_size", DEFAULT_LOG_PAGE_SIZE)
        attrs["page_size"] = min(size, conf.get("MAX_PAGE_SIZE"), MAX_LOG_PAGE_SIZE)
        return attrs


# ── Create ──────────────────────────────────────────────────────────────────────


class CreateJobSerializer(serializers.Serializer):
    """Body of ``POST /``: ``{"type": "export_table", "values": {"table_id": 42}}``."""

    type = serializers.CharField(max_length=100, help_text="A registered job type name.")
    values = serializers.DictField(
        required=False,
        default=dict,
        help_text="Values for the type's `prepare_values`; keys naming fields of its model are checked "
        "against those fields. Fields of the base job (state, user, ...) cannot be set.",
    )


# ── Documented responses ────────────────────────────────────────────────────────


class JobSerializer(serializers.Serializer):
    """A job as listed (and as sent by the event stream). Every field of 0.1.1's job JSON is here,
    with the same meaning; ``state`` and the two progress fields come from one source (see
    :mod:`task_ferry_drf.live`)."""

    id = serializers.IntegerField()
    type = serializers.CharField(help_text="Registered type name; empty for an unregistered 0.1.1 row.")
    state = serializers.ChoiceField(choices=ALL_STATES)
    progress_percentage = serializers.IntegerField(min_value=0, max_value=100)
    progress_state = serializers.CharField(allow_blank=True)
    cancel_requested = serializers.BooleanField(help_text="A cancel was requested and the job has not stopped yet.")
    error = serializers.CharField(allow_blank=True)
    human_readable_error = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    queue = serializers.CharField()
    priority = serializers.IntegerField()
    attempts = serializers.IntegerField(min_value=0)
    user = serializers.IntegerField(allow_null=True, help_text="Id of the owner; null for a system job.")


class JobDetailSerializer(JobSerializer):
    run_after = serializers.DateTimeField(allow_null=True)
    # Any JSON, null included (allow_null would make drf-spectacular emit an ambiguous oneOf).
    result = serializers.JSONField(help_text="What the type's run() returned; null if nothing.")
    values = serializers.DictField(help_text="Fields of the type's own model.")


class LogLineSerializer(serializers.Serializer):
    """One line of a job's log."""

    seq = serializers.IntegerField(min_value=1, help_text="1, 2, 3, ... in the order the lines were written.")
    level = serializers.CharField(help_text="`debug`, `info`, `warning`, `error` or `critical`.")
    message = serializers.CharField(allow_blank=True)
    logger = serializers.CharField(
        allow_blank=True, help_text="The `logging` logger of a captured record; empty for `job.log()` lines."
    )
    created_at = serializers.DateTimeField()


class LogPageSerializer(serializers.Serializer):
    """A page of a job's log lines, oldest first."""

    results = LogLineSerializer(many=True)
    has_more = serializers.BooleanField(help_text="More lines follow this page.")
    next_after = serializers.IntegerField(
        min_value=0,
        help_text="Pass as `after` to read the lines that follow: the last line's `seq` (the given `after`, "
        "or 0, when the page is empty).",
    )
    next = serializers.URLField(
        allow_null=True, help_text="This URL with `after=next_after` when `has_more`; else null."
    )


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField(required=False)


class HealthSerializer(serializers.Serializer):
    counts = serializers.DictField(child=serializers.IntegerField(), help_text="Jobs per state.")
    oldest_pending_age_seconds = serializers.FloatField(allow_null=True)
    stalled = serializers.DictField(help_text="Running jobs without progress for `threshold_seconds`.")
    failure_rate = serializers.DictField(help_text="Failed / ended among jobs that ended in the window.")
    store = serializers.DictField(help_text="Whether the progress store answered.")
    event_streams = serializers.IntegerField(help_text="Event streams open in this process.")
