from django.urls import include, path

from .settings import SIDE

urlpatterns = [path("api/jobs/", include("task_ferry.api.urls" if SIDE == "v011" else "task_ferry_drf.urls"))]
