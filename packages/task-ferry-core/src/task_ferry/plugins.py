"""Plugin discovery through the entry-point groups ``task_ferry.executors`` and
``task_ferry.progress_stores``.

A setting names a plugin by entry-point name (``"celery"``) or by dotted path
to a class (``"myproject.executors.MyExecutor"``). Plugins are imported on first
use, never at start-up; a plugin that fails to import is reported with the
reason instead of breaking Django's start-up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import import_module, metadata
from typing import Any


def checked_options(options: Mapping[str, Any] | None, accepted: Iterable[str], plugin: str) -> dict[str, Any]:
    """A plugin's ``OPTIONS`` as a new dict, or ``ValueError`` naming the unknown keys and the
    accepted ones (``"unknown OPTIONS ['URL'] for the rq executor; it takes ..."``). Call it
    first thing in ``__init__``: core reports the error as ``task_ferry.E003``/``E005`` when it
    builds the plugin, so ``manage.py check`` shows a typo before any job runs."""
    options = dict(options or {})
    accepted = list(accepted)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"unknown OPTIONS {unknown} for the {plugin}; it takes {', '.join(accepted)}.")
    return options


class PluginNotFound(LookupError):
    """The configured plugin is neither an installed entry point nor an importable class."""


#: Names of the bundled plugin distributions, for the ``pip install`` hint.
KNOWN_DISTRIBUTIONS = {
    ("task_ferry.executors", "celery"): "task-ferry-celery",
    ("task_ferry.executors", "django_tasks"): "task-ferry-django-tasks",
    ("task_ferry.executors", "rq"): "task-ferry-rq",
    ("task_ferry.executors", "dramatiq"): "task-ferry-dramatiq",
    ("task_ferry.progress_stores", "redis"): "task-ferry-redis",
}

#: 0.1.1 dotted executor paths, resolved to today's entry-point names.
LEGACY_PATHS = {
    "task_ferry.executors.celery.CeleryExecutor": "celery",
    "task_ferry.executors.django_tasks.DjangoTasksExecutor": "django_tasks",
    "task_ferry.executors.immediate.ImmediateExecutor": "immediate",
}


@dataclass(frozen=True)
class PluginInfo:
    name: str
    value: str
    distribution: str | None
    version: str | None


class PluginGroup:
    def __init__(self, group: str, kind: str) -> None:
        self.group = group
        self.kind = kind
        self._entry_points: dict[str, metadata.EntryPoint] | None = None

    def entry_points(self) -> dict[str, metadata.EntryPoint]:
        """The group's entry points by name. Scanned once per process (the scan reads
        every installed distribution's metadata: tens of milliseconds), and the result
        survives a fork, so a forked worker process does not pay it per job."""
        if self._entry_points is None:
            self._entry_points = {ep.name: ep for ep in metadata.entry_points(group=self.group)}
        return self._entry_points

    def forget(self) -> None:
        """Scan again on next use (after installing or removing a distribution in this process)."""
        self._entry_points = None

    def installed(self) -> list[PluginInfo]:
        out = []
        for name, ep in sorted(self.entry_points().items()):
            dist = getattr(ep, "dist", None)
            out.append(
                PluginInfo(name, ep.value, dist.metadata["Name"] if dist else None, dist.version if dist else None)
            )
        return out

    def install_hint(self, name: str) -> str:
        dist = KNOWN_DISTRIBUTIONS.get((self.group, name))
        if dist:
            return f"pip install {dist}"
        return f"install the distribution that provides the {self.kind} {name!r}, or use a dotted path"

    def resolve_name(self, name: str) -> str:
        return LEGACY_PATHS.get(name, name)

    def load(self, name: str) -> type:
        """Import and return the plugin class for an entry-point name or dotted path."""
        name = self.resolve_name(name)
        eps = self.entry_points()
        if name in eps:
            try:
                return eps[name].load()
            except Exception as exc:
                raise PluginNotFound(
                    f"The {self.kind} {name!r} is installed but failed to import: {type(exc).__name__}: {exc}"
                ) from exc
        if "." in name:
            module_path, _, attr = name.rpartition(".")
            try:
                return getattr(import_module(module_path), attr)
            except (ImportError, AttributeError) as exc:
                raise PluginNotFound(
                    f"Could not import the {self.kind} {name!r}: {exc}. "
                    f"Check the dotted path, or use one of the installed names: {self.names_text()}."
                ) from exc
        raise PluginNotFound(
            f"Unknown {self.kind} {name!r}. Installed: {self.names_text()}. Fix: {self.install_hint(name)}."
        )

    def names_text(self) -> str:
        return ", ".join(sorted(self.entry_points())) or "none"


EXECUTORS = PluginGroup("task_ferry.executors", "executor")
PROGRESS_STORES = PluginGroup("task_ferry.progress_stores", "progress store")
