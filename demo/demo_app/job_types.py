import time

from task_ferry.registry import JobType

from .models import ReportJob

MAX_REGIONS = 8
MAX_SECONDS = 120


class ReportJobType(JobType):
    """A report in three stages, each a child of the job's progress: fetch (10 %), one
    grandchild per region (70 %), render (20 %). It logs a line per stage and region, and
    takes about ``seconds`` in all. With ``fail_first_attempt`` its first attempt fails
    while rendering, so a retry (the second attempt) finishes."""

    type = "report"
    model_class = ReportJob
    max_count = 5

    def prepare_values(self, values, user):
        values = dict(values)
        regions = values.get("regions", 3)
        seconds = values.get("seconds", 6.0)
        if not isinstance(regions, int) or not 1 <= regions <= MAX_REGIONS:
            raise ValueError(f"regions must be a whole number from 1 to {MAX_REGIONS}, got {regions!r}.")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 1 <= seconds <= MAX_SECONDS:
            raise ValueError(f"seconds must be a number from 1 to {MAX_SECONDS}, got {seconds!r}.")
        return values

    def run(self, job: ReportJob, progress):
        # 50 ticks in all: 5 fetching, 35 over the regions, 10 rendering.
        tick = job.seconds / 50
        job.log(f"Attempt {job.attempts}: a report over {job.regions} region(s), about {job.seconds:g} s.")

        fetch = progress.create_child(represents=10, total=5)
        for step in range(5):
            time.sleep(tick)
            fetch.increment(state=f"Fetching source data ({step + 1}/5)")
        job.log("Fetched the source data.")

        crunch = progress.create_child(represents=70, total=job.regions)
        rows = max(1, round(35 / job.regions))
        row_time = tick * 35 / (job.regions * rows)
        for region in range(1, job.regions + 1):
            batch = crunch.create_child(represents=1, total=rows)
            for row in range(1, rows + 1):
                time.sleep(row_time)
                batch.increment(state=f"Region {region}/{job.regions}: batch {row}/{rows}")
            if region == 2:
                job.log(f"Region {region}: 3 rows had no date and were left out.", level="warning")
            job.log(f"Region {region}/{job.regions} aggregated.")

        render = progress.create_child(represents=20, total=10)
        for step in range(10):
            time.sleep(tick)
            if step == 5 and job.fail_first_attempt and job.attempts <= 1:
                job.log("The chart renderer crashed.", level="error")
                raise RuntimeError(
                    "The chart renderer crashed (on purpose: this job fails on its first attempt). Retry it."
                )
            render.increment(state=f"Rendering the report ({step + 1}/10)")
        job.log("Report ready.")
        return {"regions": job.regions, "pages": 2 + job.regions}
