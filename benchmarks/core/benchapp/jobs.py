from task_ferry.registry import JobType

from .models import BenchJob
from .workload import drive


class BenchJobType(JobType):
    type = "bench"
    model_class = BenchJob
    # create_and_start leaves thousands of jobs pending for one user; the limit must not trip.
    max_count = 1_000_000_000

    def run(self, job: BenchJob, progress) -> None:
        drive(progress, job.increments, job.levels)
