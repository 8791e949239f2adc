import redis
from django.db import connection
from django.urls import include, path
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from .settings import REDIS_URL, SIDE

_redis = redis.Redis.from_url(REDIS_URL)


class Floor(APIView):
    """What every authenticated DRF request costs before an endpoint does any work of its
    own (session and user lookups, DRF's dispatch, JSON rendering): ``bench_api.py``
    measures it to show the most a faster detail endpoint could gain over 0.1.1's."""

    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"id": 1, "state": "started", "progress_percentage": 50})


class FloorDetail(APIView):
    """The least a detail endpoint that shows live progress must do beyond :class:`Floor`: read
    the caller's job row (one SELECT by id and owner, through Django's connection) and the
    job's progress in Redis (one GET of the ``redis`` store's key, through redis-py), and
    render them. No serializer, no store format, no permission hooks."""

    permission_classes = [IsAuthenticated]

    def get(self, request, job_id: int):
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM task_ferry_job WHERE id = %s AND user_id = %s", [job_id, request.user.pk])
            row = cursor.fetchone()
            names = [column.name for column in cursor.description]
        if row is None:
            raise NotFound()
        live = _redis.get(f"ferry_bench:job:{job_id}:progress")
        return Response({**dict(zip(names, row)), "live": live.decode() if live else None})


urlpatterns = [
    path("api/jobs/", include("task_ferry.api.urls" if SIDE == "v011" else "task_ferry_drf.urls")),
    path("api/floor/", Floor.as_view()),
    path("api/floor/<int:job_id>/", FloorDetail.as_view()),
]
