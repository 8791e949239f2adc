from django.conf import settings
from django.contrib.auth import get_user_model, login
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from .job_types import MAX_REGIONS, MAX_SECONDS

DEMO_USERNAME = "demo"

ENGINES = {
    "django-tasks": ("Django's task framework (django-tasks-db, db_worker)", "database"),
    "celery": ("Celery (Redis broker)", "redis"),
}


def demo_user():
    """The user every visitor of the demo is signed in as (created on first use)."""
    user, created = get_user_model().objects.get_or_create(username=DEMO_USERNAME)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


@ensure_csrf_cookie
def index(request):
    # A local demo: sign the browser in as the demo user so the API (session
    # authentication, CSRF checked on POSTs) knows whose jobs to show.
    if not request.user.is_authenticated:
        login(request, demo_user(), backend="django.contrib.auth.backends.ModelBackend")
    engine, store = ENGINES[settings.ENGINE]
    return render(
        request,
        "demo_app/index.html",
        {"engine": engine, "store": store, "max_regions": MAX_REGIONS, "max_seconds": MAX_SECONDS},
    )
