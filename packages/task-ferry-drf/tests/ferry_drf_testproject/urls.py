from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

urlpatterns = [
    path("api/jobs/", include("task_ferry_drf.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
]
