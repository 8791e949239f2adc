import pytest

from task_ferry import conf

pytest_plugins = ["task_ferry.testing.fixtures"]


@pytest.fixture
def store_reads(monkeypatch):
    """Every ``read_many`` call on the configured store, as a list of id lists."""
    store = conf.get_progress_store()
    calls: list[list[int]] = []
    real = store.read_many

    def counting(job_ids):
        ids = list(job_ids)
        calls.append(ids)
        return real(ids)

    monkeypatch.setattr(store, "read_many", counting)
    return calls
