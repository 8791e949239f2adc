"""The *floor* side of the engine benchmarks: the raw engine plus the two writes that any
tracker keeping jobs in the database must make per job, and nothing else.

Two kinds, one per way ours creates jobs. ``floor``: the producer inserts the N rows in
one transaction (``bulk_create``, as ``create_many`` does), then sends the engine's
``floor`` task once per row. ``floor_each``: the producer inserts each row on its own
(one autocommitted INSERT, the least a ``create_and_start`` can write) and sends its task
right after, so the producer pays a commit per job as ``create_and_start`` does. The task, in the worker,
makes two autocommitted statements through Django's connection: the claim (a
compare-and-set from ``pending`` to ``started`` that returns the row, so the worker knows
what to run) and the outcome (``started`` to ``finished``). No progress, no attempt
record, no heartbeat, no hooks: a lower bound on what tracked jobs cost over the raw
engine on this machine, whatever the tracker. Ours is measured against it too.
"""

from __future__ import annotations

CLAIM = (
    "UPDATE task_ferry_job SET state = 'started', started_at = now(), updated_at = now(), "
    "attempts = attempts + 1 WHERE id = %s AND state = 'pending' RETURNING *"
)
FINISH = (
    "UPDATE task_ferry_job SET state = 'finished', finished_at = now(), updated_at = now(), "
    "progress_percentage = 100 WHERE id = %s AND state = 'started'"
)


def run(job_id: int) -> None:
    """The worker's part: claim, then record the outcome (two statements, no transaction)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(CLAIM, [job_id])
        if cursor.fetchone() is None:
            return
        cursor.execute(FINISH, [job_id])


def create(n: int) -> list[int]:
    """The producer's part: N pending rows in one transaction; their ids."""
    from django.contrib.contenttypes.models import ContentType
    from django.db import transaction

    from task_ferry.models import Job

    ct = ContentType.objects.get_for_model(Job)
    with transaction.atomic():
        jobs = Job.objects.bulk_create([Job(type="bench_floor", state="pending", content_type=ct) for _ in range(n)])
    return [job.pk for job in jobs]


def create_each(n: int, send, queue_in_database: bool = False) -> None:
    """The producer's part of ``floor_each``: N times, one pending row committed on its own,
    then ``send([its id])``. An engine that queues in the database (``queue_in_database``)
    gets both writes in one transaction, one commit per job, as ours makes them."""
    from contextlib import nullcontext

    from django.contrib.contenttypes.models import ContentType
    from django.db import transaction

    from task_ferry.models import Job

    ct = ContentType.objects.get_for_model(Job)
    for _ in range(n):
        with transaction.atomic() if queue_in_database else nullcontext():
            send([Job.objects.create(type="bench_floor", state="pending", content_type=ct).pk])
