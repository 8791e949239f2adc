"""Recovery of jobs RQ took but never ran (``task_ferry_rq.recovery``, ``manage.py ferry_rq_recover``).

The gap it closes, reproduced with a real worker: a work horse that dies after RQ
handed it the job and before core's runner claimed it. The test holds the database
so the horse's claim waits, SIGKILLs the horse, and lets go: the job is still
``pending``, RQ has filed its RQ job as failed, and nothing would ever run it.
"""

from __future__ import annotations

import os
import signal
from contextlib import ExitStack, contextmanager, suppress
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.utils import timezone
from ferry_rq_testproject.rqapp.models import ProbeJob
from ferry_rq_testproject.support import rq_worker
from rq.job import Job as RQJob
from rq.job import JobStatus

from task_ferry.handler import JobHandler
from task_ferry.models import Job
from task_ferry.testing.base import wait_until
from task_ferry_rq.recovery import recover_pending

pytestmark = pytest.mark.integration

TIMEOUT = 30.0
QUEUE = "ferry_rq_recover"


@pytest.fixture(autouse=True)
def _setup(transactional_db):
    pass


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return kids


@contextmanager
def _database_held(job_id: int):
    """Nobody else can claim ``job_id`` for the block: a row lock on PostgreSQL, the write
    lock on SQLite (the claim then waits, or gives up with "database is locked")."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            list(Job._base_manager.select_for_update().filter(pk=job_id))
        else:
            Job._base_manager.filter(pk=job_id).update(priority=0)
        yield


def _state(job_id: int) -> str:
    return Job._base_manager.values_list("state", flat=True).get(pk=job_id)


def _rq_status(task_id: str, redis_db9):
    return RQJob.fetch(task_id, connection=redis_db9).get_status()


def test_a_horse_killed_before_the_claim_is_dispatched_again_and_runs_once(redis_db9, settings):
    job = JobHandler.create_and_start(None, "ferry_rq_probe", seconds=0, queue=QUEUE)
    lost_task = job.executor_task_id
    with ExitStack() as workers:
        with _database_held(job.pk):
            worker = workers.enter_context(rq_worker([QUEUE], with_scheduler=False))
            # The horse waits for the database in its claim. (On SQLite it may give up first, after
            # the connection's 5 s timeout: RQ then fails the RQ job for the runner's error, which
            # leaves the same state behind, and there is no horse left to kill.)
            horses = wait_until(
                lambda: _children(worker.pid) or _rq_status(lost_task, redis_db9) == JobStatus.FAILED,
                TIMEOUT,
                "the work horse",
            )
            for horse in horses if isinstance(horses, list) else ():
                with suppress(ProcessLookupError):
                    os.kill(horse, signal.SIGKILL)
            if connection.vendor == "postgresql":
                # PostgreSQL finishes a statement whose client died (it notices only when it
                # answers), and the claim is one autocommitted statement: it would commit once the
                # lock goes. A worker whose machine died takes its connection with it; do that here.
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND datname = current_database() AND pid <> pg_backend_pid()"
                    )
        wait_until(lambda: _rq_status(lost_task, redis_db9) == JobStatus.FAILED, TIMEOUT, "RQ to fail the RQ job")
        job.refresh_from_db()
        assert (job.state, job.attempts, job.body_runs) == ("pending", 0, 0), "the horse got past the claim"

        assert recover_pending(older_than=60).redispatched == {}, "a job pending for less than a minute was touched"
        outcome = recover_pending(older_than=0)
        assert outcome.redispatched == {job.pk: "failed"}
        wait_until(lambda: _state(job.pk) == "finished", TIMEOUT, "the job to run and finish")
    job = ProbeJob._base_manager.get(pk=job.pk)
    assert (job.attempts, job.body_runs) == (1, 1)
    assert job.executor_task_id not in ("", lost_task)
    assert recover_pending(older_than=0).redispatched == {}


def test_what_is_dispatched_again_and_what_is_left_alone(redis_db9):
    """No worker: a queued RQ job and a job pending for less than ``older_than`` are left
    alone; a job whose RQ job is gone (the queue was lost) is dispatched again, once, however
    many passes run; a started job is never touched."""
    queued, gone, started = (JobHandler.create_and_start(None, "ferry_rq_probe", queue=QUEUE) for _ in range(3))
    RQJob.fetch(gone.executor_task_id, connection=redis_db9).delete()
    Job._base_manager.filter(pk=started.pk).update(state="started")
    RQJob.fetch(started.executor_task_id, connection=redis_db9).delete()
    assert recover_pending(older_than=60).checked == 0

    old = timezone.now() - timedelta(seconds=120)
    Job._base_manager.filter(pk__in=[queued.pk, gone.pk, started.pk]).update(updated_at=old)
    assert recover_pending(older_than=60).redispatched == {gone.pk: "gone"}
    gone.refresh_from_db()
    assert RQJob.fetch(gone.executor_task_id, connection=redis_db9).get_status() == JobStatus.QUEUED
    assert recover_pending(older_than=0).redispatched == {}  # its new RQ job is queued
    assert Job._base_manager.get(pk=queued.pk).executor_task_id == queued.executor_task_id


def test_the_command_runs_a_pass_and_refuses_another_executor(redis_db9, settings, capsys):
    job = JobHandler.create_and_start(None, "ferry_rq_probe", queue=QUEUE)
    RQJob.fetch(job.executor_task_id, connection=redis_db9).delete()
    call_command("ferry_rq_recover", "--older-than", "0")
    assert f"job {job.pk}: RQ job gone, dispatched again" in capsys.readouterr().out

    settings.TASK_FERRY = {**settings.TASK_FERRY, "EXECUTOR": "immediate"}
    with pytest.raises(CommandError, match="not the rq executor"):
        call_command("ferry_rq_recover")


def test_cores_reaper_runs_the_same_pass(redis_db9):
    """``manage.py ferry reap`` (one process to run from cron) recovers these jobs too."""
    from task_ferry.reaper import reap

    gone = JobHandler.create_and_start(None, "ferry_rq_probe", queue=QUEUE)
    RQJob.fetch(gone.executor_task_id, connection=redis_db9).delete()
    assert reap().recovered == []  # too young: it may be between its commit and its dispatch
    Job._base_manager.filter(pk=gone.pk).update(updated_at=timezone.now() - timedelta(seconds=120))
    assert reap().recovered == [gone.pk]
    assert reap().recovered == []
    gone.refresh_from_db()
    assert RQJob.fetch(gone.executor_task_id, connection=redis_db9).get_status() == JobStatus.QUEUED
