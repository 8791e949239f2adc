"""``manage.py ferry_rqworker [QUEUE ...] [--with-scheduler] [--burst] [--name NAME] [--max-jobs N]``.

Runs one RQ worker for task-ferry's jobs in a process where Django is set up,
on the configured rq executor's Redis connection and ``WORKER_CLASS``. Queues
are consumed in the order given (RQ always takes from the first non-empty
one); default: ``TASK_FERRY["DEFAULT_QUEUE"]``. ``--with-scheduler`` runs RQ's
scheduler too, which delayed jobs (``run_after``) need.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from task_ferry.conf import get_executor, get_progress_store, get_setting
from task_ferry.runner import prepare_process
from task_ferry_rq import jobs  # noqa: F401 -- imported here, once, not in every work horse
from task_ferry_rq.executor import RQExecutor


class Command(BaseCommand):
    help = "Run an RQ worker for task-ferry jobs (queues in priority order; --with-scheduler for run_after)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("queues", nargs="*", help="queues to consume, first = most urgent (default: DEFAULT_QUEUE)")
        parser.add_argument("--with-scheduler", action="store_true", help="also run RQ's scheduler (run_after)")
        parser.add_argument("--burst", action="store_true", help="quit once the queues are empty")
        parser.add_argument("--name", help="the worker's name (default: RQ's, unique per process)")
        parser.add_argument("--max-jobs", type=int, help="quit after this many jobs")
        parser.add_argument("--logging-level", default="INFO", help="RQ's log level (default INFO)")

    def handle(self, *args, **options) -> None:
        executor = get_executor()
        if not isinstance(executor, RQExecutor):
            raise CommandError(
                f'TASK_FERRY["EXECUTOR"] is {type(executor).__name__}, not the rq executor: jobs would never reach '
                f'this worker. Set it to "rq" (or {{"BACKEND": "rq", "OPTIONS": {{...}}}}).'
            )
        names = options["queues"] or [str(get_setting("DEFAULT_QUEUE"))]
        worker = executor.worker_class(
            [executor.queue(name) for name in names], connection=executor.connection, name=options["name"]
        )
        # A work horse is a fork of this process. Build the progress store and the runner's
        # statements here, once, so no horse pays for them (tens of ms for the store, a few
        # for the statements, in every horse); neither connects to anything. And close the
        # database connections: a horse must not inherit one.
        get_progress_store()
        prepare_process()
        connections.close_all()
        worker.work(
            burst=options["burst"],
            with_scheduler=options["with_scheduler"],
            max_jobs=options["max_jobs"],
            logging_level=options["logging_level"],
        )
