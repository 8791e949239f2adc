"""pytest fixtures of the conformance kit. Load explicitly from a conftest::

    pytest_plugins = ["task_ferry.testing.fixtures"]

The conformance classes (:mod:`task_ferry.testing.executor`,
:mod:`task_ferry.testing.store`) define their own overridable fixtures; the
ones here are for a plugin's other tests that need child processes on the
test database (see :mod:`task_ferry.testing.subprocess`).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest


@pytest.fixture(scope="session", autouse=True)
def _ferry_close_plugin_connections(django_db_setup, django_db_blocker):
    """Close connections opened by stores (the ``database`` store has its own),
    so the test database can be dropped at the end of the session."""
    yield
    from task_ferry import conf

    conf.reset()


@pytest.fixture
def ferry_child_env(transactional_db) -> dict[str, str]:
    """Environment for a child process that uses the test database and this test's
    ``TASK_FERRY`` / ``CACHES``, taken when the fixture is set up (request it after
    fixtures that change settings). Pass it to ``subprocess`` or ``running(..., env=...)``."""
    from .subprocess import child_env

    return child_env()


@pytest.fixture
def ferry_python(transactional_db) -> Callable[..., str]:
    """``ferry_python(code, *args, timeout=60)``: run a snippet in a bootstrapped child
    against the test database and this test's settings *at call time*; returns its stdout."""
    from .subprocess import run_python

    return run_python
