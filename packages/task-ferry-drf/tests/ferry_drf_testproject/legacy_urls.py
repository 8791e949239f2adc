"""A project written against 0.1.1's README, mounting the API the 0.1.1 way."""

from django.urls import include, path

urlpatterns = [path("api/jobs/", include("task_ferry.api.urls"))]
