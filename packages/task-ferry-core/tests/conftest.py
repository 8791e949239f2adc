import pytest

from task_ferry import conf, signals
from task_ferry.models import Job
from task_ferry.registry import JobType, job_type_registry

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


@pytest.fixture
def register_type():
    """Register throwaway job types for one test: ``register_type("name", model=Job, run=...,
    **other class attributes)`` returns the registered instance (``run`` returns None unless
    given); every one is unregistered afterwards."""
    names: list[str] = []

    def register(name: str, model=Job, run=lambda self, job, progress: None, **attrs) -> JobType:
        cls = type(f"Throwaway_{name}", (JobType,), {"type": name, "model_class": model, "run": run, **attrs})
        job_type_registry.register(cls())
        names.append(name)
        return job_type_registry.get(name)

    yield register
    for name in names:
        job_type_registry.unregister(name)
