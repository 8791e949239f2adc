"""The core benchmark, in one command: task-ferry-core against django-task-ferry 0.1.1.

    python3 benchmarks/run_core.py [--runs 5] [--job-runs 3] [--increments 100000] [--jobs 1000] [--many 10000]

1. Creates (or reuses) two virtualenvs under ``benchmarks/.venvs/``: ``ours``
   (core from ``packages/task-ferry-core``, editable) and ``ferry011``
   (``django-task-ferry==0.1.1`` from the package index), with the same Django,
   redis-py and psycopg versions.
2. Runs ``benchmarks/core/worker.py`` in each under the same settings (PostgreSQL
   on 127.0.0.1:5432, Django ``RedisCache`` on Redis DB 14): the creation
   workloads in rounds that alternate the two sides, then the progress workloads
   (bare ``Progress`` and the job runs) of each side.
3. Prints one table with both sides, the ratios and the targets, and writes all
   figures as JSON to ``benchmarks/results/core-<timestamp>.json``.

Needs python3 >= 3.11, PostgreSQL (user postgres, trust auth) and Redis on loopback.
See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENVS = HERE / ".venvs"
RESULTS = HERE / "results"
WORKER = HERE / "core" / "worker.py"
DJANGO = "django>=5.2,<5.3"
WORKER_OPTIONS = ("runs", "job_runs", "increments", "long", "jobs", "many")

# Targets from the benchmark's brief.
CEILING_SHARE = 0.5  # ours increments/s >= half of 0.1.1's bare Progress
MAX_TRIPS_PER_S = 15  # store round trips per second of run time


def sh(*cmd: str | Path) -> str:
    """Run a command; its stderr (pip's index warnings) is shown only if it fails."""
    done = subprocess.run([str(c) for c in cmd], text=True, capture_output=True)
    if done.returncode:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{done.stdout}{done.stderr}")
    return done.stdout


def venv(name: str, requirements: list[str]) -> Path:
    """The venv's python; (re)installs only when the requirement list changed."""
    path = VENVS / name
    python = path / "bin" / "python"
    marker = path / ".requirements"
    wanted = "\n".join(requirements)
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    print(f"setting up {path.relative_to(ROOT)} ...", file=sys.stderr)
    sh(sys.executable, "-m", "venv", "--clear", path)
    sh(python, "-m", "pip", "install", "-q", "--upgrade", "pip")
    sh(python, "-m", "pip", "install", "-q", *requirements)
    marker.write_text(wanted)
    return python


def installed(python: Path, *names: str) -> list[str]:
    code = "import sys; from importlib.metadata import version; print(' '.join(version(n) for n in sys.argv[1:]))"
    return sh(python, "-c", code, *names).split()


def source() -> dict:
    """Which core was measured: ``ours`` is an editable install of the working tree."""
    core = ROOT / "packages" / "task-ferry-core"
    try:
        commit = sh("git", "-C", ROOT, "rev-parse", "--short", "HEAD").strip()
        dirty = bool(sh("git", "-C", ROOT, "status", "--porcelain", "--", core).strip())
    except (OSError, SystemExit):
        return {"commit": "unknown", "core_modified": None}
    return {"commit": commit, "core_modified": dirty}


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "os": platform.platform()}


def run_worker(python: Path, flavour: str, phase: str, args: argparse.Namespace, **override) -> dict:
    print(f"running {flavour}: {phase} ...", file=sys.stderr)
    out = RESULTS / f".{flavour}-{os.getpid()}.json"
    db = "ferry_bench_new" if flavour == "ours" else "ferry_bench_011"
    options = {k: getattr(args, k) for k in WORKER_OPTIONS} | override
    flags = {"flavour": flavour, "db": db, "out": out, "phase": phase, **options}
    cmd = [str(python), str(WORKER), *(arg for k, v in flags.items() for arg in (f"--{k.replace('_', '-')}", str(v)))]
    subprocess.run(cmd, check=True, cwd=WORKER.parent)
    try:
        return json.loads(out.read_text())
    finally:
        out.unlink()


def creation_rounds(pythons: dict[str, Path], args: argparse.Namespace) -> dict[str, dict]:
    """The creation workloads, one timed run per round, the two sides alternating.

    Creation is bound by PostgreSQL round trips and moves with the machine's load;
    alternating the sides every few seconds exposes both to the same load."""
    rounds: dict[str, list[dict]] = {side: [] for side in pythons}
    for i in range(args.runs):
        for side in list(pythons)[:: 1 if i % 2 == 0 else -1]:
            rounds[side].append(run_worker(pythons[side], side, "create", args, runs=1))
    merged = {}
    for side, results in rounds.items():
        merged[side] = {op: results[0][op] for op in ("create_and_start", "create_many") if op in results[0]}
        for op, figures in merged[side].items():
            for variant in ("system", "user"):
                each = [r[op][variant]["jobs_per_s"] for r in results]
                figures[variant].update(jobs_per_s=statistics.median(each), jobs_per_s_each_run=each)
    return merged


def fmt(value: float) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:,.2f}".rstrip("0").rstrip(".") if value else "0"


def table(data: dict) -> str:
    ours, old = data["ours"], data["ferry011"]
    n = ours["settings"]["increments"]
    rows: list[tuple[str, str, str, str]] = []

    def row(label: str, a: float | None, b: float | None, ratio: str = "") -> None:
        rows.append((label, "-" if a is None else fmt(a), "-" if b is None else fmt(b), ratio))

    def x(a: float, b: float) -> str:
        return f"{a / b:,.2f}x" if b else "-"

    for name, title in (
        ("flat", f"job, {n:,} increments, flat"),
        ("nested3", f"job, {n:,} increments, 3 child levels"),
    ):
        a, b = ours["job_run"][name], old["job_run"][name]
        rows.append((title, "", "", ""))
        row(
            "  increments/s",
            a["increments_per_s"],
            b["increments_per_s"],
            x(a["increments_per_s"], b["increments_per_s"]),
        )
        row(
            "  store round trips / job",
            a["round_trips_per_job"],
            b["round_trips_per_job"],
            f"1/{b['round_trips_per_job'] / a['round_trips_per_job']:,.0f}" if a["round_trips_per_job"] else "-",
        )
        row("  store round trips / s of run", a["round_trips_per_s"], b["round_trips_per_s"])
        row("  DB queries / job run", a["queries_per_job"], b["queries_per_job"])
        row("  final 100% finished in DB", a["final_100_in_db"], b["final_100_in_db"])
        row(
            "  bare Progress increments/s",
            ours["bare_progress"][name]["increments_per_s"],
            old["bare_progress"][name]["increments_per_s"],
        )
        ceiling = old["bare_progress"][name]["increments_per_s"]
        rows.append(("  ours / 0.1.1 bare Progress", f"{a['increments_per_s'] / ceiling:.2f}", "", ""))
    long = ours["job_run"].get("long_flat")
    if long:
        rows.append((f"job, {long['increments']:,} increments, flat (ours only)", "", "", ""))
        row("  increments/s", long["increments_per_s"], None)
        row("  store round trips / job", long["round_trips_per_job"], None)
        row("  store round trips / s of run", long["round_trips_per_s"], None)
        row("  final 100% finished in DB", long["final_100_in_db"], None)
    for variant, title in (("system", "user=None"), ("user", "with a user")):
        a, b = ours["create_and_start"][variant], old["create_and_start"][variant]
        rows.append((f"create_and_start, {title} (no-op dispatch)", "", "", ""))
        row("  jobs/s", a["jobs_per_s"], b["jobs_per_s"], x(a["jobs_per_s"], b["jobs_per_s"]))
        row("  DB queries / job", a["queries_per_job"], b["queries_per_job"])
    for variant, title in (("system", "user=None"), ("user", "with a user")):
        a = ours["create_many"][variant]
        rows.append((f"create_many, {ours['create_many']['jobs']:,} jobs, {title}", "", "", ""))
        b = old["create_and_start"][variant]["jobs_per_s"]
        row("  jobs/s (0.1.1: create_and_start)", a["jobs_per_s"], b, x(a["jobs_per_s"], b))
        row("  DB queries, total", a["queries"], None)

    head = ("", ours["versions"]["package"], old["versions"]["package"], "ours/0.1.1")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = [line(head), "  ".join("-" * w for w in widths), *map(line, rows)]

    checks = []
    for name, a in ours["job_run"].items():
        ceiling = old["bare_progress"]["nested3" if name == "nested3" else "flat"]["increments_per_s"]
        share = a["increments_per_s"] / ceiling
        checks += [
            (f"{name}: ours >= {CEILING_SHARE:g} x 0.1.1 bare Progress", share >= CEILING_SHARE, f"{share:.2f}"),
            (
                f"{name}: <= {MAX_TRIPS_PER_S} store round trips / s",
                a["round_trips_per_s"] <= MAX_TRIPS_PER_S,
                fmt(a["round_trips_per_s"]),
            ),
            (f"{name}: final 100% in DB (every run)", a["final_100_in_db"], ""),
        ]
    out.append("")
    out += [f"{'PASS' if ok else 'MISS'}  {label}  {value}".rstrip() for label, ok, value in checks]
    m, v, src = data["machine"], ours["versions"], data["source"]
    before, after = (" ".join(f"{x:.2f}" for x in data[k]) for k in ("load_before", "load_after"))
    out += [
        "",
        f"machine: {m['cpu']}, {m['cores']} cores, {m['os']}; load average (1/5/15 min) before {before}, after {after}",
        f"core from commit {src['commit']}{' plus uncommitted changes' if src['core_modified'] else ''}",
        f"Python {v['python']}, Django {v['django']}, redis-py {v['redis-py']}, psycopg {v['psycopg']}, "
        f"Redis {v['redis_server']}, PostgreSQL {v['postgresql']}",
        f"medians of {ours['settings']['job_runs']} job runs and {ours['settings']['runs']} runs of the rest; "
        f"ours: PROGRESS_STORE 'cache' (RedisCache), "
        f"PROGRESS_FLUSH_INTERVAL {ours['settings']['flush_interval']} s (default)",
        "create_and_start / create_many measure creation + dispatch bookkeeping only, no job body runs "
        "(ours: no-op executor with supports_defer_on_commit=True;",
        "0.1.1: ImmediateExecutor.enqueue patched to a no-op); DB queries include BEGIN and COMMIT",
    ]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--runs", type=int, default=5, help="timed runs (creation: rounds, sides alternating) and of bare Progress"
    )
    parser.add_argument("--job-runs", type=int, default=3, help="timed runs of each job workload (0.1.1's take ~1 min)")
    parser.add_argument("--increments", type=int, default=100_000)
    parser.add_argument("--long", type=int, default=2_000_000, help="increments of ours' long flat job (0: skip)")
    parser.add_argument("--jobs", type=int, default=1_000, help="create_and_start calls per timed run")
    parser.add_argument("--many", type=int, default=10_000, help="jobs per create_many call")
    args = parser.parse_args()

    ours = venv("ours", ["-e", str(ROOT / "packages" / "task-ferry-core"), DJANGO, "redis", "psycopg[binary]"])
    django, redis, psycopg = installed(ours, "django", "redis", "psycopg")
    old = venv(
        "ferry011", ["django-task-ferry==0.1.1", f"django=={django}", f"redis=={redis}", f"psycopg[binary]=={psycopg}"]
    )

    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    # Other processes share the machine; the load average says how much.
    data = {"machine": machine(), "source": source(), "started": stamp, "load_before": os.getloadavg()}
    pythons = {"ours": ours, "ferry011": old}
    created = creation_rounds(pythons, args)
    for side, python in pythons.items():
        data[side] = run_worker(python, side, "progress", args) | created[side]
    data["load_after"] = os.getloadavg()
    data["table"] = table(data)
    path = RESULTS / f"core-{stamp}.json"
    path.write_text(json.dumps(data, indent=2))
    print(data["table"])
    print(f"\nJSON: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
