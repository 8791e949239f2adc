"""The OpenAPI schema itself: valid under OpenAPI 3.0 and 3.1, and covering every endpoint."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

TESTS = Path(__file__).resolve().parent

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("version", ["3.0.3", "3.1.0"])
def test_the_schema_is_valid_openapi(tmp_path, version):
    out = tmp_path / "schema.yaml"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ferry_drf_testproject.settings",
        "FERRY_DRF_OAS_VERSION": version,
        "PYTHONPATH": str(TESTS),
    }
    done = subprocess.run(
        [sys.executable, "-m", "django", "spectacular", "--validate", "--fail-on-warn", "--file", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    schema = yaml.safe_load(out.read_text())
    assert schema["openapi"] == version
    paths = schema["paths"]
    assert set(paths["/api/jobs/"]) >= {"get", "post"}
    for suffix in ("", "cancel/", "retry/", "events/"):
        assert f"/api/jobs/{{job_id}}/{suffix}" in paths
    assert "/api/jobs/health/" in paths
    list_headers = paths["/api/jobs/"]["get"]["responses"]["200"]["headers"]
    assert {"X-Total-Count", "Link", "X-Next-Cursor"} <= set(list_headers)
    events = paths["/api/jobs/{job_id}/events/"]["get"]["responses"]
    assert set(events["200"]["content"]) == {"text/event-stream"}
    assert set(events["404"]["content"]) == {"application/json"}


def test_the_readme_documents_every_endpoint():
    readme = (TESTS.parent / "README.md").read_text()
    for endpoint in (
        "GET /",
        "POST /",
        "GET /<id>/",
        "POST /<id>/cancel/",
        "POST /<id>/retry/",
        "GET /<id>/events/",
        "GET /health/",
    ):
        assert f"### `{endpoint}`" in readme, endpoint


def test_the_api_works_without_drf_spectacular():
    """The schema extra is optional: without drf-spectacular the views import and answer."""
    probe = textwrap.dedent(
        """
        import sys
        sys.modules["drf_spectacular"] = None  # as if the extra were not installed
        import django
        from django.conf import settings
        settings.configure(
            INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "rest_framework", "task_ferry",
                            "task_ferry_drf"],
            DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
            ROOT_URLCONF="task_ferry_drf.urls", ALLOWED_HOSTS=["*"], USE_TZ=True,
        )
        django.setup()
        from django.core.management import call_command
        call_command("migrate", verbosity=0)
        from django.contrib.auth import get_user_model
        from rest_framework.test import APIClient
        client = APIClient()
        client.force_authenticate(get_user_model().objects.create_user("u"))
        response = client.get("/")
        print(response.status_code, response.json(), response["X-Total-Count"])
        """
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "200 [] 0"
