"""0.1.1 compatibility: ``include("task_ferry.api.urls")`` and the JSON of its endpoints."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
from conftest import API, FIELDS_011, make_job
from django.urls import clear_url_caches, reverse

V011 = Path("/tmp/v011/lib/python3.11/site-packages/task_ferry/api")

pytestmark = pytest.mark.django_db


def test_the_fields_listed_here_are_011s():
    """FIELDS_011 (used by every superset assertion) is read from 0.1.1's serializer when its
    source is around, so the list cannot drift from the real one."""
    if not (V011 / "serializers.py").exists():
        pytest.skip(f"0.1.1 source not found at {V011}")
    tree = ast.parse((V011 / "serializers.py").read_text())
    meta = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "Meta")
    fields = next(n.value for n in meta.body if isinstance(n, ast.Assign) and n.targets[0].id == "fields")
    assert tuple(ast.literal_eval(fields)) == FIELDS_011


@pytest.fixture
def legacy_urlconf(settings):
    """The project mounts the API the 0.1.1 way."""
    import task_ferry.api.urls

    importlib.reload(task_ferry.api.urls)
    settings.ROOT_URLCONF = "ferry_drf_testproject.legacy_urls"
    clear_url_caches()
    sys.modules.pop("ferry_drf_testproject.legacy_urls", None)
    yield
    clear_url_caches()


def test_the_011_include_still_works_with_a_deprecation_warning(alice, client_for, legacy_urlconf):
    job = make_job(alice, "step", "pending")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        url = reverse("task_ferry:job-detail", args=[job.pk])  # loads the URLconf

    assert url == f"{API}{job.pk}/"
    deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert deprecations and 'include("task_ferry_drf.urls")' in str(deprecations[0].message)
    client = client_for(alice)
    assert client.get(reverse("task_ferry:job-list")).json()[0]["id"] == job.pk
    assert client.post(reverse("task_ferry:job-cancel", args=[job.pk])).json()["state"] == "cancelled"


def test_011_url_names_and_namespace_are_kept(alice):
    job = make_job(alice)
    assert reverse("task_ferry:job-list") == API
    assert reverse("task_ferry:job-detail", args=[job.pk]) == f"{API}{job.pk}/"
    assert reverse("task_ferry:job-cancel", args=[job.pk]) == f"{API}{job.pk}/cancel/"


def test_every_011_endpoint_answers_a_superset_of_its_json(alice, client_for):
    job = make_job(alice, "step", "pending", progress_state="queued")
    client = client_for(alice)

    listed = client.get(API).json()
    detail = client.get(f"{API}{job.pk}/").json()
    cancelled = client.post(f"{API}{job.pk}/cancel/").json()

    assert isinstance(listed, list)  # 0.1.1's list was a bare array (no DRF pagination envelope)
    for body in (listed[0], detail, cancelled):
        assert set(FIELDS_011) <= set(body)
        assert isinstance(body["id"], int) and isinstance(body["progress_percentage"], int)
        assert body["created_at"].endswith("Z")  # DRF's rendering, as 0.1.1's ModelSerializer did
    assert {k: detail[k] for k in FIELDS_011 if k not in ("state", "updated_at")} == {
        k: cancelled[k] for k in FIELDS_011 if k not in ("state", "updated_at")
    }


def test_core_alone_imports_the_shim_and_names_the_distribution_to_install():
    """Without task-ferry-drf, importing the 0.1.1 module still works (core's packaging probe
    imports every core module) and only mounting it fails, with the pip line."""
    probe = textwrap.dedent(
        """
        import sys
        sys.modules["task_ferry_drf"] = None  # as if task-ferry-drf were not installed
        import django
        from django.conf import settings
        settings.configure(INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "task_ferry"],
                           DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}})
        django.setup()
        import task_ferry.api.urls
        assert "rest_framework" not in sys.modules, "importing the shim imported DRF"
        from django.urls import include
        try:
            include("task_ferry.api.urls")
        except ImportError as exc:
            print(exc)
        else:
            raise SystemExit("include() worked without task_ferry_drf")
        """
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "pip install task-ferry-drf" in done.stdout
