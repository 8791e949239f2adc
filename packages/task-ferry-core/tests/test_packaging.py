"""What ``pip install task-ferry-core`` delivers, checked on a freshly built wheel.

The wheel is built from this source tree with ``python -m build`` (isolated,
as a release build is). Core depends on Django and nothing else, registers its
bundled plugins through entry points, ships its migrations and the conformance
kit, and leaves its own tests behind. Installed alone into an empty virtualenv
it imports, passes ``manage.py check`` and loads its entry points without any
plugin or optional dependency being imported.
"""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
import textwrap
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import task_ferry

pytestmark = pytest.mark.slow

CORE_DIR = Path(__file__).resolve().parents[1]
SRC = CORE_DIR / "src" / "task_ferry"
DIST_INFO = f"task_ferry_core-{task_ferry.__version__}.dist-info"

#: Top-level modules core must never import: plugins, engines, optional stores,
#: the DRF API's dependency, PostgreSQL drivers (the check runs on SQLite), and
#: pytest (only the conformance kit uses it, and only in test suites).
FORBIDDEN_MODULES = {
    "celery",
    "kombu",
    "redis",
    "rq",
    "dramatiq",
    "rest_framework",
    "django_tasks",
    "psycopg",
    "psycopg2",
    "pytest",
}

#: Runs in a separate interpreter: configure a minimal project, import every core
#: module, run the system checks, build the configured plugins and load core's
#: entry points; report what ended up in ``sys.modules``.
IMPORT_PROBE = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys
    from importlib import metadata

    import django
    from django.conf import settings

    # A typical project (admin included, so task_ferry.admin loads as it would there).
    settings.configure(
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "task_ferry",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        TEMPLATES=[{
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "APP_DIRS": True,
            "OPTIONS": {"context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]},
        }],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        USE_TZ=True,
    )
    django.setup()

    import task_ferry

    def walk(package):
        for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            if info.name == "task_ferry.testing":
                continue  # the conformance kit: loaded by test suites only, and it needs pytest
            module = importlib.import_module(info.name)
            yield info.name
            if info.ispkg:
                yield from walk(module)

    modules = list(walk(task_ferry))
    from django.core.management import call_command
    call_command("check")
    from task_ferry.conf import get_executor, get_progress_store
    get_executor(), get_progress_store()
    loaded = {}
    for group in ("task_ferry.executors", "task_ferry.progress_stores"):
        for ep in metadata.entry_points(group=group):
            if ep.dist is not None and ep.dist.name == "task-ferry-core":
                loaded[f"{group}:{ep.name}"] = ep.load().__qualname__
    print(json.dumps({
        "file": task_ferry.__file__,
        "modules": modules,
        "entry_points": loaded,
        "top_level": sorted({name.split(".")[0] for name in sys.modules}),
    }))
    """
)

#: Every installed distribution with its declared requirements.
LIST_DISTS = (
    "import json; from importlib import metadata; "
    "print(json.dumps({d.metadata['Name']: d.requires or [] for d in metadata.distributions()}))"
)


def _run(cmd: list, **kwargs) -> subprocess.CompletedProcess:
    # No DJANGO_SETTINGS_MODULE / PYTHONPATH from the test run: the probe sets up its own project.
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")}
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=600, **kwargs)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", out, CORE_DIR])
    (built,) = out.glob("task_ferry_core-*.whl")
    return built


def test_metadata_requires_django_only(wheel):
    with zipfile.ZipFile(wheel) as zf:
        meta = Parser().parsestr(zf.read(f"{DIST_INFO}/METADATA").decode())
    assert meta["Name"] == "task-ferry-core"
    assert meta["Version"] == task_ferry.__version__
    assert meta.get_all("Requires-Dist") == ["django>=5.2"]
    assert meta.get_all("Provides-Extra") is None


def test_entry_points_register_the_bundled_plugins(wheel):
    with zipfile.ZipFile(wheel) as zf:
        parser = configparser.ConfigParser()
        parser.optionxform = str  # entry-point names are case-sensitive
        parser.read_string(zf.read(f"{DIST_INFO}/entry_points.txt").decode())
    assert {section: dict(parser[section]) for section in parser.sections()} == {
        "task_ferry.executors": {"immediate": "task_ferry.executors.immediate:ImmediateExecutor"},
        "task_ferry.progress_stores": {
            "cache": "task_ferry.stores.cache:CacheProgressStore",
            "database": "task_ferry.stores.database:DatabaseProgressStore",
        },
    }


def test_wheel_ships_the_package_migrations_and_kit_but_no_tests(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert {name.split("/")[0] for name in names} == {"task_ferry", DIST_INFO}
    for required in (
        "task_ferry/migrations/0001_initial.py",
        "task_ferry/migrations/0002_add_ingestion_job.py",
        "task_ferry/testing/__init__.py",
        "task_ferry/testing/apps.py",
        "task_ferry/testing/fixtures.py",
        "task_ferry/testing/models.py",
        "task_ferry/testing/migrations/0001_initial.py",
    ):
        assert required in names
    # Every source file (every migration, every kit module) is in the wheel.
    source = {
        "task_ferry/" + p.relative_to(SRC).as_posix()
        for p in SRC.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    assert source - names == set()
    leaked = [n for n in names if "tests/" in n or "conftest" in n or "testproject" in n or n.endswith(".sqlite3")]
    assert leaked == []


def _probe(python: Path) -> dict:
    return json.loads(_run([python, "-I", "-c", IMPORT_PROBE]).stdout.strip().splitlines()[-1])


def _assert_core_alone(report: dict) -> None:
    assert {"task_ferry.models", "task_ferry.handler", "task_ferry.runner", "task_ferry.stores.database"} <= set(
        report["modules"]
    )
    assert report["entry_points"] == {
        "task_ferry.executors:immediate": "ImmediateExecutor",
        "task_ferry.progress_stores:cache": "CacheProgressStore",
        "task_ferry.progress_stores:database": "DatabaseProgressStore",
    }
    top_level = set(report["top_level"])
    assert top_level & FORBIDDEN_MODULES == set()
    assert [m for m in top_level if m.startswith("task_ferry_")] == []


def test_installed_alone_pulls_in_django_only_and_imports(wheel, tmp_path):
    """An empty virtualenv + the wheel: only core and Django's own dependency tree get installed,
    and core works there with nothing else."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    _run([python, "-m", "pip", "install", "--quiet", wheel])

    listing = _run([python, "-I", "-c", LIST_DISTS]).stdout
    dists = {canonicalize_name(name): requires for name, requires in json.loads(listing).items()}
    installed = set(dists) - {"pip", "setuptools"}
    # Walk the declared requirements (markers evaluated for this interpreter) from core down.
    needed, todo = set(), ["task-ferry-core"]
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        for raw in dists.get(name) or []:
            req = Requirement(raw)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(req.name))
    assert "django" in needed
    assert installed == needed

    report = _probe(python)
    assert report["file"].startswith(str(env_dir))
    _assert_core_alone(report)


def test_core_imports_no_installed_plugin_or_optional_dependency():
    """In the development environment plugins and optional libraries (redis, psycopg, ...)
    are installed; importing and checking core still loads none of them."""
    _assert_core_alone(_probe(Path(sys.executable)))
