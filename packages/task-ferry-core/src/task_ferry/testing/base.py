"""What the kit's conformance classes share: capability gating, the override guard,
bounded waiting, and a job row no executor has been told about.

``requires`` gates a standard test on the plugin's declared ``supports_*``
flags: the test is skipped with the reason "executor declares supports_revoke
= False" when the flag does not hold. Nothing else skips a standard test; a
plugin that cannot pass one marks its override ``xfail(reason=...)``, and
:func:`assert_standard_tests_kept` (run by every subclass as
``test_standard_tests_kept``) fails on any other override or deletion.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

F = TypeVar("F", bound=Callable[..., Any])

#: Module prefix of the kit; the guard compares a plugin's class with the kit class it derives from.
KIT_MODULE_PREFIX = "task_ferry.testing."


def requires(*flags: str, **expected: bool) -> Callable[[F], F]:
    """Run the decorated standard test only if the plugin declares ``flags`` True
    (and each ``name=value`` in ``expected`` as given).

    ``@requires("supports_revoke", "supports_delay")`` or
    ``@requires(supports_subscribe=False)``. Evaluated on the configured plugin
    instance, so flags computed from OPTIONS (a cache store on LocMemCache is not
    cross-process) are honoured."""
    wanted = {**dict.fromkeys(flags, True), **expected}

    def mark(fn: F) -> F:
        fn.ferry_requires = {**getattr(fn, "ferry_requires", {}), **wanted}  # type: ignore[attr-defined]
        return fn

    return mark


def skip_unless_supported(fn: Callable[..., Any], subject: object, kind: str) -> None:
    """``pytest.skip`` if ``subject`` does not declare what ``fn`` requires (see :func:`requires`)."""
    for flag, want in getattr(fn, "ferry_requires", {}).items():
        if not hasattr(subject, flag):
            raise AssertionError(
                f"the {kind} {type(subject).__name__} does not declare {flag!r} (see task_ferry.protocols)"
            )
        have = bool(getattr(subject, flag))
        if have is not want:
            pytest.skip(f"{kind} declares {flag} = {have}")


def _xfail_reason(fn: Any) -> str | None:
    for mark in getattr(fn, "pytestmark", []):
        if mark.name == "xfail":
            reason = mark.kwargs.get("reason") or (mark.args[1] if len(mark.args) > 1 else "")
            if isinstance(reason, str) and reason.strip():
                return reason
    return None


def standard_class(cls: type) -> type:
    """The most derived kit class ``cls`` inherits from (``ExecutorConformance``, ...)."""
    for klass in cls.__mro__:
        kit = klass.__module__.startswith(KIT_MODULE_PREFIX) and klass not in (ConformanceBase, cls)
        if kit and issubclass(klass, ConformanceBase):
            return klass
    raise AssertionError(f"{cls.__name__} is not a subclass of a task_ferry.testing conformance class.")


def assert_standard_tests_kept(cls: type) -> None:
    """Fail if ``cls`` (a plugin's conformance class) deleted a standard test, or
    replaced one without marking the replacement ``pytest.mark.xfail(reason=...)``.

    A plugin that cannot meet a standard test says so in the open, with a
    reason a reader can judge; it does not quietly weaken the test."""
    base = standard_class(cls)
    names = sorted(n for n in dir(base) if n.startswith("test_") and callable(getattr(base, n)))
    deleted = [n for n in names if not callable(getattr(cls, n, None))]
    silent = [
        n
        for n in names
        if n not in deleted and getattr(cls, n) is not getattr(base, n) and _xfail_reason(getattr(cls, n)) is None
    ]
    problems = []
    if deleted:
        problems.append(f"standard tests removed: {deleted}")
    if silent:
        problems.append(
            f"standard tests overridden without @pytest.mark.xfail(reason=...): {silent}. "
            f"Keep the kit's test, or mark the override xfail with the reason the plugin cannot pass it"
        )
    if problems:
        raise AssertionError(f"{cls.__name__} ({base.__name__}): " + "; ".join(problems) + ".")


class ConformanceBase:
    """Base of the kit's classes. No ``Test`` prefix: collected only through a plugin's ``TestXxx`` subclass."""

    #: "executor" or "progress store", for skip reasons and messages.
    ferry_kind = "plugin"

    def test_standard_tests_kept(self) -> None:
        """Guard: a plugin's subclass keeps every standard test, or marks its override xfail(reason=...)."""
        assert_standard_tests_kept(type(self))


def assert_not_in_transaction() -> None:
    """Fail if the test itself runs inside a transaction (pytest-django's ``db`` instead of
    ``transactional_db``): other processes would not see its rows, ``on_commit`` would
    never fire, and on SQLite its write lock would block every other writer."""
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        if conn.in_atomic_block:
            raise AssertionError(
                f"the test runs inside a transaction on database {conn.alias!r}; conformance tests need "
                f"transactional_db. Request it as a fixture parameter (pytest-django decides at collection time)."
            )


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns a truthy value (returned), at most ``timeout`` seconds.

    Raises ``AssertionError`` naming ``what`` (a callable is called for a message with the latest state)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what() if callable(what) else what}")
        time.sleep(interval)


def create_pending_job(**fields: Any):
    """A pending ``ConformanceJob`` row that no executor has been told about,
    to deliver by hand (``executor.submit(dispatch_of(job))``) or run with
    ``run_job``. ``fields`` are model fields (``steps``, ``step_sleep``, ``queue``, ...)."""
    from django.contrib.contenttypes.models import ContentType

    from task_ferry.conf import get_setting

    from .jobs import CONFORMANCE_TYPE
    from .models import ConformanceJob

    fields.setdefault("queue", get_setting("DEFAULT_QUEUE"))
    return ConformanceJob.objects.create(
        content_type=ContentType.objects.get_for_model(ConformanceJob, for_concrete_model=False),
        type=CONFORMANCE_TYPE,
        executor_task_id=uuid.uuid4().hex,
        **fields,
    )


def dispatch_of(job: Any):
    """The ``Dispatch`` core would hand the executor for ``job``, built from its row."""
    from task_ferry.protocols import Dispatch

    return Dispatch(
        job_id=job.pk,
        task_id=job.executor_task_id,
        job_type=job.type,
        queue=job.queue,
        priority=job.priority,
        run_after=job.run_after,
    )
