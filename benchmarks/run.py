"""task-ferry's one benchmark command (``./dev bench``): every benchmark the issues define,
side by side with the peers they name, in one table.

    python3 benchmarks/run.py [--only core,redis,celery,django-tasks,rq,dramatiq,drf] [--quick]

Parts (in this order):

``core``          task-ferry-core vs django-task-ferry 0.1.1: progress increments and store round
                  trips of a job, job creation (ferrybench/core.py, core/worker.py)
``redis``         the ``redis`` store vs core's ``cache`` store vs 0.1.1: round trips per flush,
                  batched read of 200 jobs (packages/task-ferry-redis/benchmarks/bench_redis_store.py)
``celery``        2,000 no-op jobs end to end: raw Celery, ours, 0.1.1 (ferrybench/engines/celery.py)
``django-tasks``  the same through django-tasks-db's db_worker: raw, ours
``rq``            the same through RQ: raw, ours
``dramatiq``      the same through Dramatiq: raw, ours
``drf``           requests/s of the list (200 jobs) and detail endpoints vs 0.1.1's API
                  (packages/task-ferry-drf/benchmarks/bench_api.py)

Every side runs in a virtualenv of its own under ``benchmarks/.venvs/`` (created on first run,
which needs the package index; see ferrybench/envs.py): ``ours`` with every task-ferry
distribution installed from this checkout, ``ferry011`` with django-task-ferry 0.1.1, and one
per raw engine, all pinned to the versions ``ours`` resolved. Needs python3 >= 3.11,
PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth) and Redis on 127.0.0.1:6379 (only
databases 5, 6, 8, 10, 12 and 14 are used, and flushed).

Prints one Markdown table, headed with the machine and the versions measured, writes it to
``benchmarks/RESULTS.md`` (unless ``--only`` or ``--quick`` limited the run, or
``--no-results-file``) and every figure as JSON to ``benchmarks/results/bench-<time>.json``.
``--quick`` runs tiny workloads: it checks that the command works, its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from ferrybench import core, engine, envs, table  # noqa: E402
from ferrybench.machine import load, machine, source  # noqa: E402

PARTS = ["core", "redis", "celery", "django-tasks", "rq", "dramatiq", "drf"]
ENGINES = ["celery", "django-tasks", "rq", "dramatiq"]
REDIS_SCRIPT = envs.PACKAGES / "task-ferry-redis" / "benchmarks" / "bench_redis_store.py"
DRF_SCRIPT = envs.PACKAGES / "task-ferry-drf" / "benchmarks" / "bench_api.py"
RESULTS_MD = HERE / "RESULTS.md"

#: Workloads. Full: what the issues define, with as few repetitions as keep the run near 20 minutes.
FULL = {
    "core": {"runs": 3, "job_runs": 1, "increments": 100_000, "long": 2_000_000, "jobs": 500, "many": 10_000},
    "redis": {"increments": 100_000, "forced_increments": 20_000, "jobs": 200},
    "engine": {"jobs": 2_000, "runs": 1, "warmup": 50, "count": 200},
    "drf": {"seconds": 1, "rounds": 10, "jobs": 200},
}
QUICK = {
    "core": {"runs": 1, "job_runs": 1, "increments": 2_000, "long": 0, "jobs": 20, "many": 100},
    "redis": {"increments": 2_000, "forced_increments": 2_000, "jobs": 20},
    "engine": {"jobs": 30, "runs": 1, "warmup": 5, "count": 10},
    "drf": {"seconds": 0.5, "rounds": 1, "jobs": 20},
}

SERVERS = """
import json, psycopg, redis
with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres") as conn:
    pg = conn.execute("SHOW server_version").fetchone()[0]
print(json.dumps({"redis": redis.Redis(host="127.0.0.1").info("server")["redis_version"], "postgresql": pg}))
"""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_json(cmd: list, env: dict | None = None) -> dict:
    """Runs a part's script with ``--json FILE`` appended; its figures."""
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        out = Path(tmp) / "out.json"
        clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")}
        done = subprocess.run([str(c) for c in cmd] + ["--json", str(out)], env={**clean, **(env or {})},
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
        if done.returncode:
            sys.exit(f"failed ({done.returncode}): {shlex.join(map(str, cmd))}\n{done.stdout}")
        return json.loads(out.read_text())


def redis_rows(data: dict, core_data: dict | None) -> list[dict]:
    from ferrybench.table import num

    part = "redis store (issue 3)"
    by = {(r["name"].split()[0], r["interval"] is not None and r["interval"] < 0.001): r for r in data["rows"]}
    old = next(r for r in data["rows"] if r["name"].startswith("django-task-ferry"))
    if old["job_seconds"] is None and core_data:  # taken from the core part, which ran the same job
        flat = core_data["ferry011"]["job_run"]["flat"]
        old_rate, old_trips, old_from = flat["increments_per_s"], flat["round_trips_per_job"], ", core part's run"
    else:
        old_rate, old_trips, old_from = old["increments"] / old["job_seconds"], old["round_trips"], ""
    old_cell = f"{num(old_rate)} ({old_trips:,.0f} for {old['increments']:,}{old_from}) 0.1.1"
    out = []
    for forced, title in ((True, "flush forced on every increment"), (False, "default flush interval 0.25 s")):
        ours, cache = by[("redis", forced)], by[("cache", forced)]
        n = ours["increments"]
        rate, cache_rate = n / ours["job_seconds"], n / cache["job_seconds"]
        row = {"part": part, "measure": f"job of {n:,} increments, {title}: increments/s (round trips)",
               "ours": f"{num(rate)} ({ours['round_trips']:,})",
               "peer": f"{num(cache_rate)} ({cache['round_trips']:,}) cache store; {old_cell}",
               "ratio": f"{rate / cache_rate:.2f}x cache; {rate / old_rate:,.2f}x 0.1.1"}  # fmt: skip
        if forced:
            one = ours["round_trips"] <= ours["flushes"] + 1  # the end-of-run clear is one more
            row["target"] = f"1 round trip per flush ({ours['flushes']:,} flushes): {'PASS' if one else 'MISS'}"
        out.append(row)
    ours = by[("redis", False)]
    out.append({"part": part, "measure": f"batched read of {data['jobs']} jobs: round trips; ms",
                "ours": f"{ours['read_round_trips']}; {num(ours['read_seconds'] * 1000)}",
                "peer": f"{old['read_round_trips']}; {num(old['read_seconds'] * 1000)} 0.1.1 JobSerializer",
                "ratio": f"{old['read_seconds'] / ours['read_seconds']:,.1f}x faster",
                "target": f"1 round trip: {'PASS' if ours['read_round_trips'] == 1 else 'MISS'}"})  # fmt: skip
    return out


def drf_rows(runs: dict[int, dict], jobs: int) -> list[dict]:
    """Rows of the drf part; ``runs`` maps CONN_MAX_AGE to bench_api.py's figures at it."""
    from ferrybench.table import num

    part, out = "REST API (issue 6)", []
    for conn_max_age, data in runs.items():
        conn = (
            "a new DB connection per request (CONN_MAX_AGE=0, Django's default)"
            if not conn_max_age
            else (f"persistent DB connections (CONN_MAX_AGE={conn_max_age})")
        )
        out.append({"part": part, "measure": f"one gunicorn sync worker, session auth, {conn}"})
        for endpoint, title, target in (
            ("list", f"list of {jobs} jobs", 10.0),
            ("detail", "detail of a running job", 1.5),
        ):
            ours, cache, old = (data[f"{endpoint}/{s}"] for s in ("ours", "ours-cache", "v011"))
            ratio = ours["round_ratio"]
            out += [
                {"part": part, "measure": f"&nbsp;&nbsp;{title}, redis store: requests/s (best round); ratio: median of the rounds' ratios",
                 "ours": num(ours["rps"]), "peer": f"{num(old['rps'])} 0.1.1", "ratio": f"{ratio:.2f}x",
                 "target": f">= {target:g}x: {'PASS' if ratio >= target else 'MISS'}"},
                {"part": part, "measure": "&nbsp;&nbsp;&nbsp;&nbsp;same, core's cache store", "ours": num(cache["rps"]),
                 "peer": f"{num(old['rps'])} 0.1.1", "ratio": f"{cache['round_ratio']:.2f}x"},
                {"part": part, "measure": "&nbsp;&nbsp;&nbsp;&nbsp;worker CPU ms per request; DB queries; Redis round trips",
                 "ours": f"{ours['server_cpu_ms']:.2f}; {ours['queries']}; {ours['store_trips']}",
                 "peer": f"{old['server_cpu_ms']:.2f}; {old['queries']}; {old['store_trips']}",
                 "ratio": f"{old['server_cpu_ms'] / ours['server_cpu_ms']:.2f}x CPU"},
            ]  # fmt: skip
        floor, floor_detail, old = data["floor/v011"], data["floor_detail/v011"], data["detail/v011"]
        out += [
            {"part": part, "measure": "&nbsp;&nbsp;floor: an authenticated DRF view returning a constant, requests/s",
             "ours": "", "peer": num(floor["rps"]), "ratio": f"{floor['rps'] / old['rps']:.2f}x",
             "target": "the most any detail endpoint can gain over 0.1.1's (both pay the floor)"},
            {"part": part, "measure": "&nbsp;&nbsp;floor of a live detail: the same view reading the job's row (1 SELECT) and its Redis key (1 GET), requests/s",
             "ours": "", "peer": num(floor_detail["rps"]), "ratio": f"{floor_detail['rps'] / old['rps']:.2f}x",
             "target": "the most a detail showing live progress can gain over 0.1.1's"},
        ]  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help=f"comma-separated parts: {','.join(PARTS)}")
    parser.add_argument(
        "--quick", action="store_true", help="tiny workloads: checks the command works; figures mean nothing"
    )
    parser.add_argument("--no-results-file", action="store_true", help=f"do not write {RESULTS_MD.name}")
    parser.add_argument("--jobs", type=int, help="no-op jobs per engine run (default 2,000; --quick 30)")
    args = parser.parse_args()
    parts = PARTS if not args.only else [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        sys.exit(f"bench: unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    work = QUICK if args.quick else FULL
    if args.jobs:
        work = {**work, "engine": {**work["engine"], "jobs": args.jobs}}

    started = time.monotonic()
    log("virtualenvs ...")
    ours = envs.ours()
    reference = envs.versions(ours)
    pythons = {"ours": ours}
    if {"core", "redis", "celery", "drf"} & set(parts):
        pythons["ferry011"] = envs.peer("ferry011", reference)
    for name in ENGINES:
        if name in parts:
            pythons[name] = envs.peer(name, reference)

    info = {"machine": machine(), "source": source(envs.ROOT), "load_before": load(), "parts": parts,
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "workloads": work}  # fmt: skip
    info["versions"] = reference | {k: v for k, v in envs.versions(pythons.get("ferry011", ours)).items()
                                    if k == "django-task-ferry"}  # fmt: skip
    info["servers"] = json.loads(envs.sh(ours, "-c", SERVERS))
    data: dict = {}
    rows: list[dict] = []

    def core_part() -> list[dict]:
        data["core"] = core.measure({"ours": ours, "ferry011": pythons["ferry011"]}, argparse.Namespace(**work["core"]))
        return core.rows(data["core"])

    def redis_part() -> list[dict]:
        w = work["redis"]
        cmd = [ours, REDIS_SCRIPT, "--increments", w["increments"], "--forced-increments", w["forced_increments"],
               "--jobs", w["jobs"], "--v011-python", pythons["ferry011"]]  # fmt: skip
        same_job = "core" in data and data["core"]["ours"]["settings"]["increments"] == w["increments"]
        data["redis"] = run_json(cmd + (["--skip-v011-job"] if same_job else []))
        return redis_rows(data["redis"], data.get("core") if same_job else None)

    def engine_part(name: str) -> list[dict]:
        sides = {"raw": pythons[name], "ours": ours}
        if "ferry011" in engine.load_engine(name).sides:
            sides["ferry011"] = pythons["ferry011"]
        if "floor" in engine.load_engine(name).sides:
            sides["floor"] = ours
        data[name] = engine.run_sides(name, sides, **work["engine"])
        return engine.rows(name, data[name])

    def drf_part() -> list[dict]:
        w = work["drf"]
        data["drf"] = {}
        for conn_max_age in (0, 600):
            cmd = [ours, DRF_SCRIPT, "--seconds", w["seconds"], "--rounds", w["rounds"], "--jobs", w["jobs"],
                   "--v011-python", pythons["ferry011"], "--conn-max-age", conn_max_age]  # fmt: skip
            data["drf"][conn_max_age] = run_json(cmd)
        return drf_rows(data["drf"], w["jobs"])

    what = {
        "core": ("task-ferry-core vs 0.1.1", core_part),
        "redis": ("the redis store vs the cache store vs 0.1.1", redis_part),
        **{n: (f"{work['engine']['jobs']:,} no-op jobs end to end", lambda n=n: engine_part(n)) for n in ENGINES},
        "drf": ("the REST API vs 0.1.1's", drf_part),
    }
    failed = []
    for part in PARTS:
        if part not in parts:
            continue
        title, measure = what[part]
        log(f"{part}: {title} ...")
        try:
            rows += measure()
        except (Exception, SystemExit) as exc:  # one part failing (a busy server, a worker crash) keeps the others
            log(f"{part}: FAILED: {exc}")
            failed.append(part)
            rows.append({"part": part, "measure": f"FAILED: {str(exc).splitlines()[0][:150]}"})

    info["load_after"] = load()
    info["minutes"] = (time.monotonic() - started) / 60
    info["command"] = "./dev bench" + "".join(f" {a}" for a in sys.argv[1:])
    text = "\n\n".join([table.header(info), table.markdown(rows)])
    print(text)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    path = results / f"bench-{stamp}.json"
    path.write_text(json.dumps({"info": info, "data": data, "table": text}, indent=2, default=str))
    print(f"\nJSON: {path.relative_to(envs.ROOT)}")
    if failed:
        sys.exit(f"bench: part(s) failed: {', '.join(failed)} (see above); {RESULTS_MD.name} left as it was")
    if not (args.only or args.quick or args.no_results_file):
        RESULTS_MD.write_text(
            "# Benchmark results\n\nThe last full run of `./dev bench` (written by `benchmarks/run.py`; "
            "see [README.md](README.md) for what each row means and how to reproduce it).\n\n" + text + "\n"
        )
        print(f"table written to {RESULTS_MD.relative_to(envs.ROOT)}")


if __name__ == "__main__":
    main()
