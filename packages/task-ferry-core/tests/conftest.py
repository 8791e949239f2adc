import pytest

from task_ferry import conf, signals

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


@pytest.fixture
def failures():
    """``(job id, exception)`` of every ``job_failed`` signal sent during the test."""
    seen = []

    def receiver(sender, job, exc, **kwargs):
        seen.append((job.pk, exc))

    signals.job_failed.connect(receiver)
    yield seen
    signals.job_failed.disconnect(receiver)
