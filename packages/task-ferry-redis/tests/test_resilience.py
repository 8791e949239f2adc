"""A job survives its progress store: Redis killed and restarted mid-job, Redis
absent from the start, and a server that accepts connections but never answers.

The store raises redis-py's errors; core's runner catches them around each
flush, logs one warning per outage and one when the store is back, and the
job's outcome is recorded in the database as usual."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test import override_settings
from ferry_redis_testproject.redisapp.models import StepJob
from ferry_redis_testproject.support import PARKING, free_port

from task_ferry.conf import get_progress_store
from task_ferry.handler import JobHandler
from task_ferry.live import LiveProgress, live_progress
from task_ferry.protocols import Snapshot
from task_ferry.runner import RunResult, run_job
from task_ferry.states import JOB_FINISHED, JOB_STARTED
from task_ferry_redis.store import RedisProgressStore

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _ferry_settings(url: str):
    return override_settings(
        TASK_FERRY={
            "EXECUTOR": PARKING,
            "PROGRESS_STORE": {"BACKEND": "redis", "OPTIONS": {"URL": url}},
            "PROGRESS_FLUSH_INTERVAL": 0.05,
        }
    )


class JobThread(threading.Thread):
    """``run_job`` in its own thread, as a worker would, with its own DB connection."""

    def __init__(self, job_id: int) -> None:
        super().__init__(daemon=True)
        self.job_id = job_id
        self.result: RunResult | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = run_job(self.job_id)
        except BaseException as exc:  # inspected by the test
            self.error = exc
        finally:
            connection.close()


def _outage_logs(caplog) -> tuple[list[str], list[str]]:
    messages = [
        r.getMessage() for r in caplog.records if r.name == "task_ferry.runner" and r.levelno >= logging.WARNING
    ]
    return [m for m in messages if "unreachable" in m], [m for m in messages if "reachable again" in m]


def _assert_finished_in_db(job_id: int, thread: JobThread) -> None:
    assert thread.error is None, f"run_job raised {thread.error!r}"
    assert thread.result is not None and thread.result.outcome == JOB_FINISHED
    assert thread.result.exception is None
    row = StepJob.objects.get(pk=job_id)
    # StepJobType.run lets every exception through, so "finished" means none reached it.
    assert (row.state, row.progress_percentage, row.error) == (JOB_FINISHED, 100, "")
    assert row.result == {"steps": row.steps}


@pytest.mark.slow
def test_redis_killed_and_restarted_mid_job(redis_server, caplog, fresh_store_health):
    caplog.set_level(logging.WARNING, logger="task_ferry.runner")
    reader = RedisProgressStore({"URL": redis_server.url, "SOCKET_TIMEOUT": 0.2, "SOCKET_CONNECT_TIMEOUT": 0.2})
    seen: list[tuple[float, int | None, bool]] = []  # (when, percentage or None, read failed)

    def observe(until) -> None:
        while not until():
            try:
                snap = reader.read_many([job.pk]).get(job.pk)
                seen.append((time.monotonic(), snap.percentage if snap else None, False))
            except redis.RedisError:
                seen.append((time.monotonic(), None, True))
            time.sleep(0.03)

    with _ferry_settings(redis_server.url):
        job = JobHandler.create_and_start(None, "redis_steps", steps=80, step_sleep=0.05)  # about 4 s
        worker = JobThread(job.pk)
        started = time.monotonic()
        worker.start()

        observe(lambda: any(pct for _, pct, _ in seen) or time.monotonic() - started > 5)
        before_kill = max(pct or 0 for _, pct, _ in seen)
        assert before_kill > 0, "no progress showed before the outage"
        redis_server.kill()
        killed = time.monotonic()
        observe(lambda: time.monotonic() - killed > 1.5)
        redis_server.start()  # same port, empty
        restarted = time.monotonic()
        observe(lambda: not worker.is_alive() or time.monotonic() - started > 30)
        worker.join(10)
    reader.close()
    elapsed = time.monotonic() - started

    assert not worker.is_alive(), "the job hung"
    _assert_finished_in_db(job.pk, worker)
    assert worker.result.store_writes > 5
    down, up = _outage_logs(caplog)
    assert len(down) == 1, down  # once per outage, not once per flush
    assert len(up) == 1, up
    assert "RedisProgressStore" in down[0]
    # Readers saw the outage, then progress again, further along than before it.
    assert any(failed for when, _, failed in seen if killed < when < restarted)
    after = [pct for when, pct, _ in seen if when > restarted and pct is not None]
    assert after, "no progress showed after Redis came back"
    assert max(after) > before_kill
    assert elapsed < 4 + 5, f"the outage stalled the job ({elapsed:.1f} s for about 4 s of work)"


def test_redis_absent_from_the_start(caplog, fresh_store_health):
    caplog.set_level(logging.WARNING, logger="task_ferry.runner")
    with _ferry_settings(f"redis://127.0.0.1:{free_port()}/0"):
        job = JobHandler.create_and_start(None, "redis_steps", steps=20, step_sleep=0.02)
        worker = JobThread(job.pk)
        started = time.monotonic()
        worker.start()
        worker.join(20)
    assert time.monotonic() - started < 3
    _assert_finished_in_db(job.pk, worker)
    assert worker.result.store_writes == 0
    down, up = _outage_logs(caplog)
    assert (len(down), len(up)) == (1, 0)


def test_server_that_never_answers_costs_at_most_the_socket_timeout():
    """A Redis that accepts connections but hangs (overloaded, paused, half-dead)
    must not hold a job: with the default 1 s timeouts each call gives up in about 1 s."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)  # the kernel completes connects; nobody ever reads or answers
        store = RedisProgressStore({"URL": f"redis://127.0.0.1:{listener.getsockname()[1]}/0"})
        for call in (
            lambda: store.write(Snapshot(1, JOB_STARTED, 10, "", 1.0)),
            lambda: store.read_many([1, 2, 3]),
            lambda: store.clear(1),
        ):
            start = time.monotonic()
            with pytest.raises(redis.TimeoutError):
                call()
            assert 0.5 < time.monotonic() - start < 2.5
        store.close()


def test_list_reads_fall_back_to_the_database_while_redis_is_down(redis_db13):
    """``task_ferry.live.live_progress`` (behind the admin, ``ferry list`` and the
    API) shows the store's snapshot while Redis answers, and the row's values
    when it does not, reporting the error instead of raising it."""
    job = JobHandler.create_and_start(None, "redis_steps", steps=1)
    StepJob.objects.filter(pk=job.pk).update(state=JOB_STARTED, progress_percentage=42, progress_state="halfway")
    row = StepJob.objects.get(pk=job.pk)
    with _ferry_settings(settings.REDIS_TEST_URL):
        get_progress_store().write(Snapshot(job.pk, JOB_STARTED, 77, "from redis", time.time()))
        assert live_progress([row])[job.pk] == LiveProgress(JOB_STARTED, 77, "from redis", "store")
    errors: list[Exception] = []
    with _ferry_settings(f"redis://127.0.0.1:{free_port()}/0"):
        shown = live_progress([row], on_store_error=errors.append)[job.pk]
    assert shown == LiveProgress(JOB_STARTED, 42, "halfway", "database")
    assert len(errors) == 1 and isinstance(errors[0], redis.ConnectionError)


def test_model_reads_fall_back_to_the_database_while_redis_is_down():
    with _ferry_settings(f"redis://127.0.0.1:{free_port()}/0"):
        job = JobHandler.create_and_start(None, "redis_steps", steps=1)
        StepJob.objects.filter(pk=job.pk).update(state=JOB_STARTED, progress_percentage=42, progress_state="halfway")
        row = StepJob.objects.get(pk=job.pk)
        assert row.get_cached_progress_percentage() == 42
        assert row.get_cached_progress_state() == "halfway"
        assert row.get_cached_state() == JOB_STARTED
