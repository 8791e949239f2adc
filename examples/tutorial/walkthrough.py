import time

from django.contrib.auth.models import User

from task_ferry.handler import JobHandler

ada, _ = User.objects.get_or_create(username="ada")

# Dispatch: returns at once; the worker starts the job after the transaction commits.
job = JobHandler.create_and_start(ada, "report", rows=300)

# Poll: live values come from the progress store while the job runs.
while not job.has_ended:
    print(job.get_cached_state(), job.get_cached_progress_percentage(), job.get_cached_progress_state())
    time.sleep(0.5)
job.refresh_from_db()
print(job.state, job.progress_percentage, job.result)

# Cancel: recorded at once; the run stops at its next progress flush.
job = JobHandler.create_and_start(ada, "report", rows=2000)
while job.get_cached_progress_percentage() < 20:
    time.sleep(0.2)
JobHandler.cancel(ada, job.pk)
job = JobHandler.get_job(ada, job.pk)  # what a view does: someone else's job raises JobDoesNotExist
print(job.state)
