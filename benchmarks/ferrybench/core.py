"""The core benchmark (task-ferry-core against django-task-ferry 0.1.1): progress and creation.

Runs ``benchmarks/core/worker.py`` inside each side's virtualenv (``ours``, ``ferry011``):
the creation workloads in rounds that alternate the two sides, then the progress workloads
(bare ``Progress`` and the job runs) of each side. See benchmarks/README.md for what each
figure means.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from .envs import BENCH
from .table import num

RESULTS = BENCH / "results"
WORKER = BENCH / "core" / "worker.py"
WORKER_OPTIONS = ("runs", "job_runs", "increments", "long", "jobs", "many")

# Targets from the benchmark's brief.
CEILING_SHARE = 0.5  # ours increments/s >= half of 0.1.1's bare Progress
MAX_TRIPS_PER_S = 15  # store round trips per second of run time
fmt = num


def add_options(parser: argparse.ArgumentParser, **defaults) -> None:
    d = {"runs": 5, "job_runs": 3, "increments": 100_000, "long": 2_000_000, "jobs": 1_000, "many": 10_000} | defaults
    parser.add_argument("--runs", type=int, default=d["runs"],
                        help="timed runs (creation: rounds, sides alternating) and of bare Progress")  # fmt: skip
    parser.add_argument("--job-runs", type=int, default=d["job_runs"],
                        help="timed runs of each job workload (0.1.1's take ~1-2 min each)")  # fmt: skip
    parser.add_argument("--increments", type=int, default=d["increments"])
    parser.add_argument("--long", type=int, default=d["long"], help="increments of ours' long flat job (0: skip)")
    parser.add_argument("--jobs", type=int, default=d["jobs"], help="create_and_start calls per timed run")
    parser.add_argument("--many", type=int, default=d["many"], help="jobs per create_many call")


def measure(pythons: dict[str, Path], args: argparse.Namespace) -> dict:
    """Both sides' figures: ``pythons`` is {"ours": ..., "ferry011": ...}."""
    RESULTS.mkdir(exist_ok=True)
    created = creation_rounds(pythons, args)
    return {side: run_worker(python, side, "progress", args) | created[side] for side, python in pythons.items()}


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


def table(data: dict) -> str:
    """The core benchmark's own detailed table (``run_core.py``)."""
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
        f"core from commit {src['commit']}{' plus uncommitted changes' if src['modified'] else ''}",
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


def rows(data: dict) -> list[dict]:
    """The core benchmark's rows of the one table."""
    ours, old = data["ours"], data["ferry011"]
    out = []
    part = "core (issue 2)"
    for name, title in (("flat", "flat"), ("nested3", "3 child levels")):
        a, b = ours["job_run"][name], old["job_run"][name]
        ceiling = old["bare_progress"][name]["increments_per_s"]
        share = a["increments_per_s"] / ceiling
        out += [
            {"part": part, "measure": f"job of {a['increments']:,} increments, {title}: increments/s",
             "ours": num(a["increments_per_s"]), "peer": f"{num(b['increments_per_s'])} 0.1.1",
             "ratio": f"{a['increments_per_s'] / b['increments_per_s']:,.0f}x",
             "target": f">= {CEILING_SHARE}x 0.1.1's bare Progress ({num(ceiling)}): "
                       f"{share:.2f} {'PASS' if share >= CEILING_SHARE else 'MISS'}"},
            {"part": part, "measure": "&nbsp;&nbsp;store round trips per job; per s of run",
             "ours": f"{num(a['round_trips_per_job'])}; {num(a['round_trips_per_s'])}",
             "peer": f"{num(b['round_trips_per_job'])}; {num(b['round_trips_per_s'])}",
             "target": f"<= {MAX_TRIPS_PER_S}/s: {'PASS' if a['round_trips_per_s'] <= MAX_TRIPS_PER_S else 'MISS'}",
             "note": "" if a["final_100_in_db"] else "final 100% NOT in DB"},
        ]  # fmt: skip
    long = ours["job_run"].get("long_flat")
    if long:
        out.append({"part": part, "measure": f"job of {long['increments']:,} increments, flat (ours only): "
                    "increments/s; round trips per s of run",
                    "ours": f"{num(long['increments_per_s'])}; {num(long['round_trips_per_s'])}",
                    "target": f"<= {MAX_TRIPS_PER_S}/s: {'PASS' if long['round_trips_per_s'] <= MAX_TRIPS_PER_S else 'MISS'}"})  # fmt: skip
    for variant, title in (("system", "user=None"), ("user", "with a user")):
        a, b = ours["create_and_start"][variant], old["create_and_start"][variant]
        out.append({"part": part, "measure": f"create_and_start, {title}, no-op dispatch: jobs/s (DB queries per job)",
                    "ours": f"{num(a['jobs_per_s'])} ({num(a['queries_per_job'])})",
                    "peer": f"{num(b['jobs_per_s'])} ({num(b['queries_per_job'])})",
                    "ratio": f"{a['jobs_per_s'] / b['jobs_per_s']:.2f}x"})  # fmt: skip
    many = ours["create_many"]
    for variant, title in (("system", "user=None"), ("user", "with a user")):
        a, b = many[variant], old["create_and_start"][variant]
        out.append({"part": part, "measure": f"create_many of {many['jobs']:,} jobs, {title}: jobs/s (queries in all)",
                    "ours": f"{num(a['jobs_per_s'])} ({a['queries']})",
                    "peer": f"{num(b['jobs_per_s'])} 0.1.1 create_and_start",
                    "ratio": f"{a['jobs_per_s'] / b['jobs_per_s']:.2f}x"})  # fmt: skip
    return out
