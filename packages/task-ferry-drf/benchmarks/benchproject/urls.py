from django.urls import include, path
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from .settings import SIDE


class Floor(APIView):
    """What every authenticated DRF request costs before an endpoint does any work of its
    own (session and user lookups, DRF's dispatch, JSON rendering): ``bench_api.py``
    measures it to show the most a faster detail endpoint could gain over 0.1.1's."""

    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"id": 1, "state": "started", "progress_percentage": 50})


urlpatterns = [
    path("api/jobs/", include("task_ferry.api.urls" if SIDE == "v011" else "task_ferry_drf.urls")),
    path("api/floor/", Floor.as_view()),
]
