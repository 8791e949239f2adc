"""``manage.py demo``: start a multi-stage job in a worker process and watch its
progress live from this one (through the database progress store)."""

from django.core.management import BaseCommand, call_command
from django.core.management.base import CommandError

from task_ferry.handler import JobHandler


class Command(BaseCommand):
    help = "Run the task-ferry demo: one multi-stage job, live progress in the terminal."

    def add_arguments(self, parser):
        parser.add_argument("--regions", type=int, default=4)

    def handle(self, *args, **options):
        call_command("migrate", verbosity=0)
        job = JobHandler.create_and_start(None, "regional_report", regions=options["regions"])
        self.stdout.write(f"Started job {job.pk} ({job.type}) in a worker process; watching it (Ctrl+C stops).")
        try:
            call_command("ferry", "watch", str(job.pk), "--interval", "0.2")
        except CommandError as exc:
            if getattr(exc, "returncode", 1) not in (0,):
                raise
        except KeyboardInterrupt:
            self.stdout.write("\nStopping the worker.")
        finally:
            from demo_app.executors import SubprocessExecutor

            for proc in SubprocessExecutor.processes:
                if proc.poll() is None:
                    proc.terminate()
                proc.wait(timeout=10)
        job.refresh_from_db()
        self.stdout.write(f"Job {job.pk} ended {job.state}: result={job.result}")
