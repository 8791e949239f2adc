"""The Celery app of the demo (``FERRY_DEMO_ENGINE=celery``): Celery's usual Django layout.
The demo's launcher starts ``celery -A demo_project.celery:app worker`` itself."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_project.settings")

app = Celery("demo_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
