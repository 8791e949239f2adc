"""``values()`` queries compiled to SQL once per process and shape, then run many times.

Turning a queryset into SQL is most of what the ORM costs for the two reads a client
polls (the detail of one job, a page of the list): on PostgreSQL compiling the detail's
query takes longer than running it. A :class:`CompiledValues` is built from a queryset
whose variable inputs are *slots*: unmistakable placeholder values, each standing for
one parameter. The SQL is compiled once; each run binds the slots' values at their
positions and reads the rows through the same compiler, so Django's converters (JSON,
custom fields) still apply and the rows equal what ``queryset.values()`` returns.

A queryset that hides a slot's value inside its SQL (rather than passing it as a
parameter) or transforms it on the way (a ``contains`` lookup adds ``%``) cannot be
cached: building it raises :class:`NotCompilable`, and callers then use the ORM as usual.
"""

from __future__ import annotations

import datetime
import itertools
import threading
import uuid
from collections.abc import Callable, Hashable
from typing import Any

from django.core.exceptions import FieldError
from django.db import connections
from django.db.models import CharField, DateTimeField, Field, IntegerField, QuerySet, TextField, UUIDField

#: Compiled queries per process; a key's value is None when its shape cannot be compiled.
_CACHE: dict[Hashable, CompiledValues | None] = {}
#: Keys include limits and offsets, so a busy API could make many: past this, start over.
MAX_ENTRIES = 256
_LOCK = threading.Lock()
_counter = itertools.count(1)


class NotCompilable(Exception):
    """The queryset's parameters do not map one to one onto its slots."""


def int_slot() -> int:
    """A slot for an integer (a primary key, a user id). Positive and within 32 bits: Django
    answers an integer lookup outside its field's range without a parameter."""
    return 2_000_000_000 - next(_counter)


def text_slot() -> str:
    """A slot for a string (a state, a type name)."""
    return f"\x00task-ferry-slot-{next(_counter)}\x00"


def datetime_slot() -> datetime.datetime:
    """A slot for an aware datetime."""
    return datetime.datetime(1111, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(microseconds=next(_counter))


def slot_for(field: Field) -> Any:
    """A slot for a value of ``field`` (followed to its target for a foreign key)."""
    target = getattr(field, "target_field", field)
    if isinstance(target, IntegerField):  # AutoField and BigAutoField too
        return int_slot()
    if isinstance(target, UUIDField):
        return uuid.UUID(int=next(_counter), version=4)
    if isinstance(target, CharField | TextField):
        return text_slot()
    if isinstance(target, DateTimeField):
        return datetime_slot()
    raise NotCompilable(f"no slot for a {type(target).__name__}")


class CompiledValues:
    """One ``values()`` queryset's SQL, its parameters in terms of named slots."""

    def __init__(self, queryset: QuerySet, slots: dict[str, Any]) -> None:
        query = queryset.query
        if not query.values_select and not query.annotation_select:
            raise NotCompilable("only values() querysets are compiled")
        self.alias = queryset.db
        self.compiler = query.get_compiler(self.alias)
        self.sql, params = self.compiler.as_sql()
        by_value = {value: name for name, value in slots.items()}
        if len(by_value) != len(slots):
            raise NotCompilable("two slots share a value")
        #: For each parameter: the slot it takes, or (None, the constant it always is).
        self.params: list[tuple[str | None, Any]] = []
        seen = set()
        for value in params:
            name = by_value.get(value) if isinstance(value, Hashable) else None
            if name is not None:
                seen.add(name)
            self.params.append((name, value))
        if seen != set(slots):
            raise NotCompilable(f"slots not found among the query's parameters: {sorted(set(slots) - seen)}")
        self.names = [*query.extra_select, *query.values_select, *query.annotation_select]
        # What ``compiler.results_iter`` would work out again on every run.
        self.converters = self.compiler.get_converters(
            [column[0] for column in self.compiler.select[: self.compiler.col_count]]
        )

    def rows(self, **values: Any) -> list[dict[str, Any]]:
        """The rows, as ``queryset.values()`` would give them with these slot values."""
        params = [constant if name is None else values[name] for name, constant in self.params]
        with connections[self.alias].cursor() as cursor:
            cursor.execute(self.sql, params)
            found = cursor.fetchall()
        if self.converters:
            found = self.compiler.apply_converters(found, self.converters)
        names = self.names
        return [dict(zip(names, row)) for row in found]


def compiled(key: Hashable, build: Callable[[], tuple[QuerySet, dict[str, Any]]]) -> CompiledValues | None:
    """The compiled query for ``key``, built by ``build()`` (a queryset made with slot values,
    and the slots by name) the first time; None if that shape cannot be compiled."""
    try:
        return _CACHE[key]
    except KeyError:
        pass
    try:
        queryset, slots = build()
        found: CompiledValues | None = CompiledValues(queryset, slots)
    except (NotCompilable, FieldError):
        found = None
    with _LOCK:
        if len(_CACHE) >= MAX_ENTRIES:
            _CACHE.clear()
        _CACHE[key] = found
    return found


def clear() -> None:
    """Forget every compiled query (tests that change models or routing call this)."""
    with _LOCK:
        _CACHE.clear()
