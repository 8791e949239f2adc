"""The benchmarks' virtualenvs, under ``benchmarks/.venvs/<name>``, created on first use.

``ours`` holds every task-ferry distribution installed (editable) from this checkout; every
peer is installed from the package index into a virtualenv of its own: ``ferry011``
(django-task-ferry 0.1.1), and the raw engines ``celery``, ``rq``, ``dramatiq`` and
``django-tasks``. The peers are pinned to the versions ``ours`` resolved (Django, redis-py,
psycopg, and the engine itself), so a ratio compares task-ferry's tracking and nothing else.

A virtualenv is rebuilt only when its requirement list changes (kept in ``.requirements``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]
ROOT = BENCH.parent
VENVS = BENCH / ".venvs"
PACKAGES = ROOT / "packages"
OURS = ["core", "redis", "celery", "django-tasks", "rq", "dramatiq", "drf"]

#: What ``ours`` needs besides our distributions: engines' extras, servers, drivers.
OURS_EXTRA = [
    "django>=5.2,<5.3",
    "django-tasks>=0.12",  # the backport, on Django 5.2
    "django-tasks-db",
    "celery[redis]",
    "dramatiq[redis]",
    "redis",
    "psycopg[binary]",
    "gunicorn",
    "pytest",  # task_ferry.testing (the Redis benchmark creates its jobs with the kit's helpers)
]
#: Distribution names whose versions every benchmark reports (and peers are pinned to).
MEASURED = [
    "task-ferry-core",
    "django-task-ferry",
    "django",
    "celery",
    "kombu",
    "rq",
    "dramatiq",
    "django-tasks",
    "django-tasks-db",
    "djangorestframework",
    "redis",
    "psycopg",
    "gunicorn",
]


def sh(*cmd: str | Path, env: dict | None = None) -> str:
    """Run a command; its output is shown only if it fails."""
    done = subprocess.run([str(c) for c in cmd], text=True, capture_output=True, env=env)
    if done.returncode:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{done.stdout}{done.stderr}")
    return done.stdout


def venv(name: str, requirements: list[str]) -> Path:
    """The python of ``benchmarks/.venvs/<name>``; (re)installs only when the requirement list changed."""
    path = VENVS / name
    python = path / "bin" / "python"
    marker = path / ".requirements"
    wanted = "\n".join(requirements)
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    print(f"setting up {path.relative_to(ROOT)} (first run only) ...", file=sys.stderr, flush=True)
    sh(sys.executable, "-m", "venv", "--clear", path)
    sh(python, "-m", "pip", "install", "-q", "--upgrade", "pip")
    sh(python, "-m", "pip", "install", "-q", *requirements)
    marker.write_text(wanted)
    return python


def versions(python: Path | str, names: list[str] = MEASURED) -> dict[str, str]:
    """Installed versions of ``names`` in that interpreter (missing ones left out)."""
    code = (
        "import json, sys\nfrom importlib.metadata import version, PackageNotFoundError\nout = {}\n"
        "for n in sys.argv[1:]:\n    try: out[n] = version(n)\n    except PackageNotFoundError: pass\n"
        "out['python'] = sys.version.split()[0]\nprint(json.dumps(out))"
    )
    import json

    return json.loads(sh(python, "-c", code, *names))


def ours() -> Path:
    return venv("ours", [arg for p in OURS for arg in ("-e", str(PACKAGES / f"task-ferry-{p}"))] + OURS_EXTRA)


def _pinned(reference: dict[str, str], *names: str, extras: dict[str, str] | None = None) -> list[str]:
    extras = extras or {}
    return [f"{n}{extras.get(n, '')}=={reference[n]}" for n in names]


def peer(name: str, reference: dict[str, str]) -> Path:
    """A peer's virtualenv, pinned to the versions of ``reference`` (what ``ours`` runs)."""
    base = _pinned(reference, "django", "redis", "psycopg", extras={"psycopg": "[binary]"})
    if name == "ferry011":
        reqs = ["django-task-ferry==0.1.1", *base]
        reqs += _pinned(reference, "celery", "djangorestframework", "gunicorn", extras={"celery": "[redis]"})
    elif name == "celery":
        reqs = _pinned(reference, "celery", "redis", extras={"celery": "[redis]"})
    elif name == "rq":
        reqs = _pinned(reference, "rq", "redis")
    elif name == "dramatiq":
        reqs = _pinned(reference, "dramatiq", "redis", extras={"dramatiq": "[redis]"})
    elif name == "django-tasks":
        reqs = [*base, *_pinned(reference, "django-tasks", "django-tasks-db")]
    else:
        raise ValueError(f"unknown peer virtualenv {name!r}: ferry011, celery, rq, dramatiq or django-tasks")
    return venv(name, reqs)
