"""The benchmarks' Django app: registers the no-op job type ``bench_noop`` (ours and 0.1.1
alike, the same code runs against both) when task_ferry is an installed app."""

from django.apps import AppConfig, apps

JOB_TYPE = "bench_noop"


class BenchConfig(AppConfig):
    name = "ferrybench"
    label = "ferrybench"

    def ready(self) -> None:
        if not apps.is_installed("task_ferry"):  # a raw engine's side
            return
        from task_ferry.models import Job
        from task_ferry.registry import JobType, job_type_registry

        class NoopJobType(JobType):
            """A tracked job whose body does nothing: what tracking costs, and nothing else."""

            type = JOB_TYPE
            model_class = Job
            max_count = 10**9

            def run(self, job, progress) -> None:
                return None

        job_type_registry.register(NoopJobType())
