import time

from task_ferry.registry import JobType

from .models import ReportJob


class ReportJobType(JobType):
    """A multi-stage job: fetch (10 %), crunch every region (70 %, a child per
    region with its own step count), render (20 %)."""

    type = "regional_report"
    model_class = ReportJob
    max_count = 3

    def run(self, job: ReportJob, progress):
        for step in range(5):
            time.sleep(0.1)
            progress.increment(2, state=f"Fetching source data ({step + 1}/5)")
        crunch = progress.create_child(represents=70, total=job.regions)
        for region in range(job.regions):
            rows = crunch.create_child(represents=1, total=job.rows_per_region)
            for row in range(job.rows_per_region):
                time.sleep(0.004)
                rows.increment(state=f"Region {region + 1}/{job.regions}: row {row + 1}/{job.rows_per_region}")
        for step in range(4):
            time.sleep(0.15)
            progress.increment(5, state=f"Rendering report ({step + 1}/4)")
        return {"regions": job.regions, "rows": job.regions * job.rows_per_region}
