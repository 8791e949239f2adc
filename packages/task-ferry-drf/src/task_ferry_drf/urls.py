"""URLs of the REST API. Mount them under any prefix::

    path("api/jobs/", include("task_ferry_drf.urls"))

=======================  ======  =============  ===========================================
path                     method  name           what
=======================  ======  =============  ===========================================
``""``                   GET     ``job-list``   the caller's jobs (filters, pagination)
``""``                   POST    ``job-list``   create a job of a registered type
``<id>/``                GET     ``job-detail`` one job, live
``<id>/cancel/``         POST    ``job-cancel`` cancel (idempotent; an ended job is 400)
``<id>/retry/``          POST    ``job-retry``  run a failed or cancelled job again
``<id>/events/``         GET     ``job-events`` server-sent events until the job ends
``<id>/logs/``           GET     ``job-logs``   a page of the job's log lines (``after`` or ``page``)
``health/``              GET     ``health``     operators' numbers (staff or token)
=======================  ======  =============  ===========================================

The namespace is ``task_ferry``, as in 0.1.1, so ``reverse("task_ferry:job-detail", args=[id])``
keeps working.
"""

from django.urls import path

from .health import HealthView
from .views import JobCancelView, JobDetailView, JobEventsView, JobListView, JobLogsView, JobRetryView

app_name = "task_ferry"

urlpatterns = [
    path("", JobListView.as_view(), name="job-list"),
    path("health/", HealthView.as_view(), name="health"),
    path("<int:job_id>/", JobDetailView.as_view(), name="job-detail"),
    path("<int:job_id>/cancel/", JobCancelView.as_view(), name="job-cancel"),
    path("<int:job_id>/retry/", JobRetryView.as_view(), name="job-retry"),
    path("<int:job_id>/events/", JobEventsView.as_view(), name="job-events"),
    path("<int:job_id>/logs/", JobLogsView.as_view(), name="job-logs"),
]
