import time

from task_ferry.registry import JobType

from .models import ReportJob


class ReportJobType(JobType):
    type = "report"
    model_class = ReportJob
    max_count = 3  # pending or running reports per user

    def prepare_values(self, values, user):
        if not 1 <= values.get("rows", 0) <= 10_000:
            raise ValueError("rows must be between 1 and 10000")
        return values

    def run(self, job, progress):
        progress.increment(10, state="Querying")
        write = progress.create_child(represents=90, total=job.rows)
        lines = []
        for n in range(1, job.rows + 1):
            time.sleep(0.01)  # the real work goes here
            lines.append(f"row {n}")
            write.increment(state=f"Row {n} of {job.rows}")
        job.output = "\n".join(lines)
        job.save()  # your fields only: state and progress are the runner's
        return {"rows": job.rows}  # stored as job.result

    def on_cancelled(self, job):
        print(f"report {job.pk} cancelled")
