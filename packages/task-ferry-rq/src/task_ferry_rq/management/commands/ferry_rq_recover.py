"""``manage.py ferry_rq_recover [--every SECONDS] [--older-than SECONDS]``.

Dispatches again the ``pending`` jobs RQ took and will never run (their RQ job
failed or stopped before core's runner claimed them, or is gone with a lost
queue): see :mod:`task_ferry_rq.recovery`. Safe from cron next to
``manage.py ferry reap``, and with several instances at once.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from task_ferry.conf import get_executor
from task_ferry_rq.executor import RQExecutor
from task_ferry_rq.recovery import default_age, recover_forever, recover_pending


class Command(BaseCommand):
    help = "Dispatch again the pending jobs whose RQ job a dying worker took and never ran."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--every", type=float, help="run a pass every SECONDS until interrupted")
        parser.add_argument(
            "--older-than",
            type=float,
            help="only jobs unchanged for SECONDS (default: HEARTBEAT_TIMEOUT, at least 60)",
        )

    def handle(self, *args, **options) -> None:
        executor = get_executor()
        if not isinstance(executor, RQExecutor):
            raise CommandError(
                f'TASK_FERRY["EXECUTOR"] is {type(executor).__name__}, not the rq executor: there is nothing for '
                f"ferry_rq_recover to recover."
            )
        older_than = options["older_than"]
        if older_than is not None and older_than < 0:
            raise CommandError(f"--older-than must be >= 0 seconds, got {older_than}.")
        every = options["every"]
        if every is not None and every <= 0:
            raise CommandError(f"--every must be > 0 seconds, got {every}.")

        def report(outcome) -> None:
            for pk, reason in outcome.redispatched.items():
                self.stdout.write(f"job {pk}: RQ job {reason}, dispatched again")

        if every is None:
            report(recover_pending(executor, older_than))
            return
        self.stdout.write(
            f"ferry_rq_recover: a pass every {every:g}s, jobs unchanged for "
            f"{default_age() if older_than is None else older_than:g}s (Ctrl-C to stop)"
        )
        try:
            recover_forever(every, older_than, on_pass=report)
        except KeyboardInterrupt:
            pass
