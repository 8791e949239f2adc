"""The documentation cannot go stale silently.

Checks the repository's ``README.md``, ``docs/*.md`` and ``examples/README.md``
against the code:

* the README's settings table lists every ``TASK_FERRY`` key, with its default,
  and nothing else; ``docs/settings.md`` does the same for ``TASK_FERRY_DRF``
  and for every bundled plugin's ``OPTIONS`` (read from the plugins' source
  files, so this runs with core alone installed);
* a code block whose first line names a file (``# reports/models.py``,
  ``# examples/thread_executor/ferry_thread_executor.py``) shows lines of that
  file, in order: the README's tutorial is ``examples/tutorial/`` (whose test
  runs it against a real ``db_worker``), the plugin guide shows the tested
  examples;
* ``docs/api.md`` names every public member of ``JobType``, ``JobHandler``
  and ``Progress``, every signal, exception and ``ferry`` subcommand;
* every relative link and ``#anchor`` resolves.
"""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
README = REPO / "README.md"
DOCS = REPO / "docs"
TUTORIAL = REPO / "examples" / "tutorial"
PACKAGES = REPO / "packages"

FENCE = re.compile(r"^```(\w*)\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
ROW = re.compile(r"^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|\s*(.*?)\s*\|", re.MULTILINE)
MARKER = re.compile(r"^# ((?:[\w.-]+/)*[\w.-]+\.(?:py|toml))$")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def documents() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md")), REPO / "examples" / "README.md"]


def without_code(text: str) -> str:
    return FENCE.sub("", text)


def section(text: str, heading: str) -> str:
    """The body of the Markdown section whose heading line is ``heading`` (``## Settings``),
    up to the next heading of the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = text.splitlines()
    try:
        start = lines.index(heading)
    except ValueError:
        raise AssertionError(f"no section {heading!r}") from None
    body = []
    for line in lines[start + 1 :]:
        match = re.match(r"(#+) ", line)
        if match and len(match[1]) <= level:
            break
        body.append(line)
    return "\n".join(body)


def table(text: str) -> dict[str, str]:
    """``{KEY: second cell}`` for the table rows whose first cell is a backticked setting name."""
    return {key: cell for key, cell in ROW.findall(without_code(text))}


def shown(value) -> str:
    """A default as the docs write it: a Python literal in backticks."""
    return f'`"{value}"`' if isinstance(value, str) else f"`{value!r}`"


def source_constant(path: Path, name: str):
    """A module-level constant of a source file, without importing it (the plugin may not be installed)."""
    for node in ast.parse(path.read_text()).body:
        target = (
            node.target
            if isinstance(node, ast.AnnAssign)
            else (node.targets[0] if isinstance(node, ast.Assign) else None)
        )
        if isinstance(target, ast.Name) and target.id == name:
            value = node.value
            if isinstance(value, ast.Call) and value.args:  # frozenset({...}), tuple([...])
                value = value.args[0]
            return ast.literal_eval(value)
    raise AssertionError(f"{path.relative_to(REPO)} has no constant {name}")


# ── Settings ───────────────────────────────────────────────────────────────────


def test_readme_settings_table_lists_every_key_with_its_default():
    from task_ferry.conf import DEFAULTS, LEGACY_KEYS

    text = section(README.read_text(), "## Settings")
    rows = table(text)
    assert set(rows) == set(DEFAULTS), (
        f"README's settings table: missing {sorted(set(DEFAULTS) - set(rows))}, "
        f"not settings {sorted(set(rows) - set(DEFAULTS))} (task_ferry/conf.py DEFAULTS is the source)"
    )
    for key, default in DEFAULTS.items():
        assert rows[key] == shown(default), f"README gives {key} the default {rows[key]}; conf.py: {shown(default)}"
    for legacy in LEGACY_KEYS:
        assert f"`{legacy}`" in text, f"the 0.1.1 key {legacy} is not mentioned in README's settings section"


def test_drf_settings_are_documented_with_their_defaults():
    defaults = source_constant(PACKAGES / "task-ferry-drf/src/task_ferry_drf/conf.py", "DEFAULTS")
    rows = table(section((DOCS / "settings.md").read_text(), "## `TASK_FERRY_DRF` (task-ferry-drf)"))
    assert set(rows) == set(defaults)
    for key, default in defaults.items():
        assert rows[key] == shown(default), f"docs/settings.md gives {key} the default {rows[key]}"


PLUGIN_OPTIONS = [
    ("## `celery` executor (task-ferry-celery)", "task-ferry-celery/src/task_ferry_celery/executor.py", "OPTIONS"),
    (
        "## `django_tasks` executor (task-ferry-django-tasks)",
        "task-ferry-django-tasks/src/task_ferry_django_tasks/executor.py",
        "OPTIONS",
    ),
    ("## `rq` executor (task-ferry-rq)", "task-ferry-rq/src/task_ferry_rq/executor.py", "OPTIONS"),
    (
        "## `dramatiq` executor (task-ferry-dramatiq)",
        "task-ferry-dramatiq/src/task_ferry_dramatiq/executor.py",
        "OPTIONS",
    ),
    ("## `redis` store (task-ferry-redis)", "task-ferry-redis/src/task_ferry_redis/store.py", "OPTION_NAMES"),
]


@pytest.mark.parametrize(
    ("heading", "source", "constant"), PLUGIN_OPTIONS, ids=[p[1].split("/")[0] for p in PLUGIN_OPTIONS]
)
def test_plugin_options_are_documented(heading, source, constant):
    accepted = set(source_constant(PACKAGES / source, constant))
    documented = set(table(section((DOCS / "settings.md").read_text(), heading)))
    assert documented == accepted, (
        f"docs/settings.md {heading}: missing {sorted(accepted - documented)}, "
        f"not accepted {sorted(documented - accepted)} ({source} {constant} is the source)"
    )


CORE_PLUGINS = [
    ("## `immediate` executor (core)", "task_ferry.executors.immediate.ImmediateExecutor"),
    ("## `database` store (core)", "task_ferry.stores.database.DatabaseProgressStore"),
    ("## `cache` store (core)", "task_ferry.stores.cache.CacheProgressStore"),
]


@pytest.mark.parametrize(("heading", "path"), CORE_PLUGINS, ids=[p[1].rsplit(".", 1)[1] for p in CORE_PLUGINS])
def test_core_plugin_options_are_documented(heading, path):
    """Core's plugins keep their OPTIONS inline; the error for an unknown key names the accepted ones."""
    from django.utils.module_loading import import_string

    cls = import_string(path)
    documented = table(section((DOCS / "settings.md").read_text(), heading))
    with pytest.raises(ValueError) as refused:
        cls({"NOT_AN_OPTION": 1})
    accepted = set(re.findall(r"\b[A-Z][A-Z_]{2,}\b", str(refused.value))) - {"OPTIONS", "NOT_AN_OPTION"}
    assert set(documented) == accepted, f"docs/settings.md {heading}: {sorted(documented)}; the plugin: {refused.value}"
    for key, cell in documented.items():
        literal = re.search(r"\((\d+)\)", cell) or re.match(r"`([^`]+)`", cell)
        cls({key: ast.literal_eval(literal[1])})  # the documented default is accepted


# ── Code blocks ────────────────────────────────────────────────────────────────


def marked_blocks(doc: Path) -> list[tuple[Path, list[str]]]:
    """``(file, lines)`` for each code block whose first line is ``# <path>``. Paths under
    ``examples/`` or ``packages/`` are from the repository root; others are the tutorial's."""
    out = []
    for _, body in FENCE.findall(doc.read_text()):
        first, *rest = body.splitlines()
        match = MARKER.match(first)
        if match:
            name = match[1]
            base = REPO if name.startswith(("examples/", "packages/")) else TUTORIAL
            out.append((base / name, rest))
    return out


def assert_lines_in_order(block: list[str], path: Path, doc: Path) -> None:
    """Every line of ``block`` (but blank and ``...`` lines) is a line of ``path``, in order."""
    assert path.is_file(), f"{doc.name} shows {path.relative_to(REPO)}, which does not exist"
    lines = path.read_text().splitlines()
    position = 0
    for line in block:
        if not line.strip() or line.strip() in ("...", "...,"):
            continue
        try:
            position = lines.index(line, position) + 1
        except ValueError:
            raise AssertionError(
                f"{doc.relative_to(REPO)} shows this line of {path.relative_to(REPO)}, which the file does not have "
                f"(after line {position}):\n{line}\nUpdate the docs from the file (the file is what the tests run)."
            ) from None


@pytest.mark.parametrize(
    ("doc", "at_least"),
    [(README, 5), (DOCS / "writing-plugins.md", 8)],
    ids=["README", "writing-plugins"],
)
def test_code_blocks_show_the_tested_files(doc, at_least):
    blocks = marked_blocks(doc)
    assert len(blocks) >= at_least, f"{doc.name} has {len(blocks)} code blocks naming their file; expected {at_least}+"
    for path, lines in blocks:
        assert_lines_in_order(lines, path, doc)


def test_every_tutorial_file_is_shown_in_the_readme():
    shown_files = {path for path, _ in marked_blocks(README)}
    for name in ("settings.py", "reports/models.py", "reports/job_types.py", "reports/apps.py", "walkthrough.py"):
        assert TUTORIAL / name in shown_files, f"README's tutorial does not show examples/tutorial/{name}"


def test_a_block_that_differs_from_its_file_is_caught(tmp_path):
    """The check above is not vacuous."""
    doc = REPO / "README.md"
    with pytest.raises(AssertionError, match="which the file does not have"):
        assert_lines_in_order(
            ["class ReportJob(Job):", "    rows = models.IntegerField()"], TUTORIAL / "reports/models.py", doc
        )


# ── API reference ──────────────────────────────────────────────────────────────


def public_members(cls: type) -> set[str]:
    return {name for name in vars(cls) if not name.startswith("_")}


#: Public only for core's own wiring: the runner attaches the root Progress to the store.
RUNNER_WIRING = {"attach", "flushed"}


def test_api_reference_names_every_public_member():
    from task_ferry import exceptions, signals
    from task_ferry.handler import JobHandler
    from task_ferry.progress import Progress
    from task_ferry.registry import JobType

    api = (DOCS / "api.md").read_text()
    expected = {
        "JobType": public_members(JobType),
        "JobHandler": public_members(JobHandler),
        "Progress": public_members(Progress) - RUNNER_WIRING,
        "signals": {name for name, value in vars(signals).items() if isinstance(value, signals.Signal)},
        "exceptions": {
            name
            for name, value in vars(exceptions).items()
            if isinstance(value, type) and issubclass(value, exceptions.TaskFerryError)
        },
    }
    for what, names in expected.items():
        missing = sorted(name for name in names if f"`{name}`" not in api and f"`{name}(" not in api)
        assert not missing, f"docs/api.md does not document {what}: {missing}"


def test_api_reference_lists_every_ferry_subcommand():
    from task_ferry.management.commands.ferry import Command

    parser = Command().create_parser("manage.py", "ferry")
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    listed = set(re.findall(r"^\| `(\w+)", section((DOCS / "api.md").read_text(), "## Management commands"), re.M))
    assert listed == set(subparsers.choices)


# ── Links ──────────────────────────────────────────────────────────────────────


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown file."""
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#+ (.+)$", without_code(path.read_text()), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


@pytest.mark.parametrize("doc", documents(), ids=lambda p: p.name)
def test_links_resolve(doc):
    for target in LINK.findall(without_code(doc.read_text())):
        if re.match(r"[a-z]+:", target):
            continue
        file_part, _, anchor = target.partition("#")
        path = (doc.parent / file_part).resolve() if file_part else doc
        assert path.exists(), f"{doc.name} links to {target}, which does not exist"
        if anchor:
            assert path.suffix == ".md", f"{doc.name} links to an anchor in a non-Markdown file: {target}"
            assert anchor in anchors(path), f"{doc.name} links to {target}: no such heading in {path.name}"
