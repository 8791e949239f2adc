"""``GET /health/``: numbers an operator watches, for staff users or a monitoring token.

Authorised by either a staff session/credentials (``user.is_staff``) or the
``X-Ferry-Health-Token`` header equal to ``TASK_FERRY_DRF["HEALTH_TOKEN"]``
(compared in constant time). Costs four queries and one store round trip.
"""

from __future__ import annotations

import hmac
import time
from datetime import timedelta

from django.db.models import Count, Min, Q
from django.utils import timezone
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from task_ferry.conf import get_progress_store
from task_ferry.models import Job
from task_ferry.states import ALL_STATES, JOB_FAILED, JOB_PENDING, JOB_STARTED, JOB_STATES_ENDED

from . import conf, sse
from ._schema import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from .serializers import ErrorSerializer, HealthSerializer
from .views import FerryView

#: At most this many stalled job ids are listed (the count is exact).
STALLED_IDS_SHOWN = 50

TOKEN_HEADER = "X-Ferry-Health-Token"


class StaffOrHealthToken(BasePermission):
    message = f"Staff users only, or a valid {TOKEN_HEADER} header."

    def has_permission(self, request, view) -> bool:
        token = conf.get("HEALTH_TOKEN")
        given = request.META.get("HTTP_X_FERRY_HEALTH_TOKEN")
        if token and given and hmac.compare_digest(given.encode(), str(token).encode()):
            return True
        return bool(getattr(request.user, "is_staff", False))


class HealthView(FerryView):
    throttle_scope = "task_ferry_health"

    def get_permissions(self):
        # Not DEFAULT_PERMISSION_CLASSES: a monitoring probe with the token has no user.
        return [StaffOrHealthToken()]

    @extend_schema(
        operation_id="task_ferry_health",
        parameters=[OpenApiParameter(TOKEN_HEADER, str, OpenApiParameter.HEADER, description="The HEALTH_TOKEN.")],
        responses={
            200: HealthSerializer,
            401: OpenApiResponse(ErrorSerializer),
            403: OpenApiResponse(ErrorSerializer),
            429: OpenApiResponse(ErrorSerializer),
        },
        examples=[
            OpenApiExample(
                "Health",
                response_only=True,
                value={
                    "counts": {"pending": 4, "started": 2, "finished": 120, "failed": 3, "cancelled": 1},
                    "oldest_pending_age_seconds": 12.5,
                    "stalled": {"threshold_seconds": 600, "count": 1, "job_ids": [311]},
                    "failure_rate": {"window_seconds": 3600, "ended": 40, "failed": 2, "rate": 0.05},
                    "store": {"backend": "RedisProgressStore", "ok": True, "error": ""},
                    "event_streams": 3,
                },
            )
        ],
    )
    def get(self, request):
        now = timezone.now()
        jobs = Job._base_manager.order_by()
        counts = {state: 0 for state in ALL_STATES}
        counts.update(dict(jobs.values_list("state").annotate(n=Count("pk"))))
        oldest = jobs.filter(state=JOB_PENDING).aggregate(oldest=Min("created_at"))["oldest"]

        running = list(jobs.filter(state=JOB_STARTED).values_list("pk", "started_at", "updated_at"))
        store = get_progress_store()
        store_error = ""
        try:
            # Probe with an id that never exists when nothing runs, so the answer says whether the store is up.
            snaps = store.read_many([pk for pk, _, _ in running] or [0])
        except Exception as exc:
            snaps, store_error = {}, f"{type(exc).__name__}: {exc}"
        threshold = float(conf.get("STALLED_AFTER"))
        cutoff = time.time() - threshold
        stalled = []
        for pk, started_at, updated_at in running:
            snap = snaps.get(pk)
            last = snap.updated_at if snap is not None and snap.updated_at else (started_at or updated_at).timestamp()
            if last < cutoff:
                stalled.append(pk)

        window = float(conf.get("FAILURE_WINDOW"))
        ended = jobs.filter(state__in=JOB_STATES_ENDED, finished_at__gte=now - timedelta(seconds=window)).aggregate(
            ended=Count("pk"), failed=Count("pk", filter=Q(state=JOB_FAILED))
        )
        return Response(
            {
                "counts": counts,
                "oldest_pending_age_seconds": (now - oldest).total_seconds() if oldest else None,
                "stalled": {
                    "threshold_seconds": threshold,
                    "count": len(stalled),
                    "job_ids": stalled[:STALLED_IDS_SHOWN],
                },
                "failure_rate": {
                    "window_seconds": window,
                    "ended": ended["ended"],
                    "failed": ended["failed"],
                    "rate": round(ended["failed"] / ended["ended"], 4) if ended["ended"] else 0.0,
                },
                "store": {"backend": type(store).__name__, "ok": not store_error, "error": store_error},
                "event_streams": sse.open_streams(),
            }
        )
