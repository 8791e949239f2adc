from __future__ import annotations

import pytest
from ferry_dt_testproject.workers import db_worker

pytest_plugins = ["task_ferry.testing.fixtures"]


@pytest.fixture
def start_db_worker(transactional_db):
    """``with start_db_worker(*queues, **kwargs) as proc:``, see :func:`db_worker`."""
    return db_worker
