"""pytest fixtures of the conformance kit. Load explicitly from a conftest::

    pytest_plugins = ["task_ferry.testing.fixtures"]
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _ferry_close_plugin_connections(django_db_setup, django_db_blocker):
    """Close connections opened by stores (the ``database`` store has its own),
    so the test database can be dropped at the end of the session."""
    yield
    from task_ferry import conf

    conf.reset()
