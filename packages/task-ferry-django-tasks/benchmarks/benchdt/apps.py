from django.apps import AppConfig


class BenchConfig(AppConfig):
    name = "benchdt"

    def ready(self) -> None:
        from task_ferry.models import Job
        from task_ferry.registry import JobType, job_type_registry

        class NoopJobType(JobType):
            """The tracked side of the benchmark: a job whose body does nothing."""

            type = "bench_noop"
            model_class = Job

            def run(self, job, progress):
                return None

        job_type_registry.register(NoopJobType())
