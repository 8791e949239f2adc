"""Requests/s of the job API: task-ferry-drf against django-task-ferry 0.1.1, in one run.

    python packages/task-ferry-drf/benchmarks/bench_api.py [--seconds 1] [--rounds 10] [--jobs 200] [--conn-max-age 0]

Run it with a Python that has task-ferry-drf, task-ferry-redis, gunicorn and
psycopg installed (the ``drf`` hatch environment, the test venv, or
``benchmarks/.venvs/ours``: it is the ``drf`` part of ``./dev bench``). It:

1. uses ``--v011-python``, or creates (or reuses) the benchmarks' shared 0.1.1
   virtualenv ``benchmarks/.venvs/ferry011`` (``django-task-ferry==0.1.1`` with this
   interpreter's Django, redis-py, psycopg, DRF and gunicorn; see
   ``benchmarks/ferrybench/envs.py``);
2. creates the PostgreSQL database ``ferry_drf_bench_<pid>`` (dropped at the end),
   migrates it with core's migrations (0.1.1's two are among them, same schema),
   and seeds one user with ``--jobs`` jobs of the 0.1.1 README's ``ExportJob``
   type, a quarter of them running with live progress written to Redis database
   10 in both formats (the ``redis`` store's keys, and Django-cache keys as 0.1.1
   and core's ``cache`` store read them);
3. serves ``benchmarks/benchproject`` with gunicorn (1 synchronous worker) once per
   side -- ``ours`` (``redis`` store), ``ours-cache`` (core's ``cache`` store over
   RedisCache) and ``v011`` (0.1.1's own endpoints) -- and drives each endpoint
   from one client loop for ``--seconds``, logged in with the same session, the sides
   taking turns for ``--rounds`` rounds (the best round of each side is reported, and the
   median over the rounds of each round's ratio to 0.1.1, steadier on a shared machine);
4. prints requests/s, median latency, the worker's CPU time per request (from
   ``/proc``: it hardly depends on how loaded the machine is, unlike requests/s),
   and the database queries and Redis round trips of one request (counted
   server-side by ``benchproject.counting``), with ours / 0.1.1 ratios against
   the targets (list >= 10x, detail >= 1.5x).

Endpoints: ``GET /api/jobs/?limit=<jobs>`` (the list, one page of every job) and
``GET /api/jobs/<id>/`` of a running job; and, on 0.1.1's server only, two floors.
``GET /api/floor/``: an authenticated DRF view that returns a constant. What it costs,
every request to either API costs too, so its requests/s over 0.1.1's detail bounds the
detail's possible gain. ``GET /api/floor/<id>/``: the same view reading the job's row (one
SELECT by id and owner) and its progress key in Redis (one GET), the two reads no detail
that shows live progress can do without; its requests/s over 0.1.1's detail bounds the
gain of any such detail.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
DATABASE = f"ferry_drf_bench_{os.getpid()}"  # two runs at once do not drop each other's
TARGETS = {"list": 10.0, "detail": 1.5}

SEED = """
import json, time
import django
django.setup()
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from benchapp.models import ExportJob
from task_ferry.conf import get_progress_store
from task_ferry.models import Job
from task_ferry.protocols import Snapshot
from task_ferry.stores.cache import CacheProgressStore

call_command("migrate", verbosity=0)
user = get_user_model().objects.create_user("bench", password="bench")
ct = ContentType.objects.get_for_model(ExportJob)
now = timezone.now()
running = []
for n in range({jobs}):
    live = n % 4 == 0
    job = ExportJob.objects.create(
        user=user, content_type=ct, type="export_table", table_id=n, state="started" if live else "finished",
        progress_percentage=0 if live else 100, progress_state="" if live else "Done", started_at=now,
        finished_at=None if live else now, attempts=1,
    )
    if live:
        running.append(job.pk)
redis_store, cache_store = get_progress_store(), CacheProgressStore({{}})
for pk in running:
    snap = Snapshot(pk, "started", pk % 100, f"Writing row {{pk}}...", time.time())
    redis_store.write(snap)   # the redis store's keys (ours)
    cache_store.write(snap)   # the Django-cache keys 0.1.1 reads (and core's cache store)
client = Client()
client.force_login(user)
print(json.dumps({{"session": client.cookies["sessionid"].value, "running": running}}))
"""


def sh(*cmd, env=None) -> str:
    done = subprocess.run([str(c) for c in cmd], text=True, capture_output=True, env=env)
    if done.returncode:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{done.stdout}{done.stderr}")
    return done.stdout


def venv_011() -> Path:
    """The benchmarks' shared 0.1.1 virtualenv, pinned to this interpreter's versions."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from ferrybench import envs

    return envs.peer("ferry011", envs.versions(sys.executable))


def versions(python: Path | str) -> str:
    code = (
        "from importlib.metadata import version as v; "
        "print(', '.join(f'{n} {v(n)}' for n in ('django', 'djangorestframework', 'redis', 'gunicorn')))"
    )
    return sh(python, "-c", code).strip()


def env_for(side: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")}
    env.update(
        PYTHONPATH=str(HERE),
        DJANGO_SETTINGS_MODULE="benchproject.settings",
        FERRY_BENCH_SIDE=side,
        FERRY_BENCH_DB=DATABASE,
    )
    return env


def admin_sql(sql: str) -> None:
    import psycopg

    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(sql)


def flush_redis() -> None:
    import redis

    redis.Redis.from_url("redis://127.0.0.1:6379/10").flushdb()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(port: int, path: str, cookie: str) -> tuple[int, dict[str, str], bytes]:
    # A new connection per request: gunicorn's sync worker closes each one after its response.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers={"Cookie": f"sessionid={cookie}", "Accept": "application/json"})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


class Server:
    def __init__(self, python: Path | str, side: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                str(python),
                "-m",
                "gunicorn",
                "benchproject.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "1",
                "--worker-class",
                "sync",
                "--log-level",
                "warning",
            ],
            env=env_for(side),
            cwd=HERE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"gunicorn ({side}) did not start:\n{self.proc.stderr.read()}")
                time.sleep(0.1)

        self.worker = self._worker_pid()

    def _worker_pid(self) -> int:
        """The (single) worker's pid: its CPU time is what a request costs in Python."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
            if children:
                return int(children[0])
            time.sleep(0.1)
        sys.exit("gunicorn started no worker")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.worker}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def measure(server: Server, path: str, cookie: str, seconds: float, check) -> dict:
    port = server.port
    for _ in range(5):  # warm up: imports, connections, content-type cache
        status, headers, body = get(port, path, cookie)
        if status != 200:
            sys.exit(f"GET {path} answered {status}: {body[:500]!r}")
        check(json.loads(body))
    latencies = []
    cpu = server.cpu_seconds()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        status, headers, _ = get(port, path, cookie)
        latencies.append(time.perf_counter() - started)
        if status != 200:
            sys.exit(f"GET {path} answered {status} during the run")
    cpu = server.cpu_seconds() - cpu
    return {
        "requests": len(latencies),
        "server_cpu_ms": cpu / len(latencies) * 1000,
        "rps": len(latencies) / sum(latencies),
        "p50_ms": statistics.median(latencies) * 1000,
        "queries": int(headers["x-bench-queries"]),
        "store_trips": int(headers["x-bench-store-trips"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="run time per endpoint, side and round")
    parser.add_argument("--rounds", type=int, default=10, help="rounds (sides take turns in each)")
    parser.add_argument("--jobs", type=int, default=200, help="jobs of the user (the list shows all of them)")
    parser.add_argument(
        "--conn-max-age", type=int, default=0, help="Django's CONN_MAX_AGE for both sides (0: a connection per request)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--v011-python", type=Path, help="0.1.1's interpreter (default: benchmarks/.venvs/ferry011)")
    args = parser.parse_args()

    os.environ["FERRY_BENCH_CONN_MAX_AGE"] = str(args.conn_max_age)
    sides = {"ours": sys.executable, "ours-cache": sys.executable, "v011": args.v011_python or venv_011()}
    admin_sql(f"DROP DATABASE IF EXISTS {DATABASE}")
    admin_sql(f"CREATE DATABASE {DATABASE}")
    flush_redis()
    try:
        seeded = json.loads(sh(sys.executable, "-c", SEED.format(jobs=args.jobs), env=env_for("ours")).splitlines()[-1])
        cookie, live = seeded["session"], seeded["running"][len(seeded["running"]) // 2]
        paths = {
            "list": f"/api/jobs/?limit={args.jobs}",
            "detail": f"/api/jobs/{live}/",
            "floor": "/api/floor/",
            "floor_detail": f"/api/floor/{live}/",
        }

        def check_list(body):
            assert len(body) == args.jobs, len(body)

        def check_detail(body):
            # Every side must show the live progress seeded for this running job.
            assert body["progress_percentage"] == live % 100, body

        def check_floor(body):
            assert body["progress_percentage"] == 50, body

        def check_floor_detail(body):
            assert body["id"] == live and body["live"], body

        checks = {"list": check_list, "detail": check_detail, "floor": check_floor, "floor_detail": check_floor_detail}

        # All servers up at once, and the sides measured in turn, round after round: a change in
        # the machine's load then hits every side alike. Best round per side is reported.
        servers = {side: Server(python, side) for side, python in sides.items()}
        runs: dict = {}
        try:
            for _ in range(args.rounds):
                for endpoint, path in paths.items():
                    for side, server in servers.items():
                        if endpoint.startswith("floor") and side != "v011":  # the same code on every side
                            continue
                        run = measure(server, path, cookie, args.seconds, checks[endpoint])
                        runs.setdefault((endpoint, side), []).append(run)
        finally:
            for server in servers.values():
                server.stop()
        results = {key: max(found, key=lambda r: r["rps"]) for key, found in runs.items()}
        # CPU per request hardly depends on the machine's load: the least of the rounds.
        for key, found in runs.items():
            results[key] = {**results[key], "server_cpu_ms": min(r["server_cpu_ms"] for r in found)}
        # The ratio to 0.1.1 within each round (the sides measured seconds apart), its median over
        # the rounds: on a shared machine whose speed drifts, steadier than best against best.
        for (endpoint, side), found in runs.items():
            old = runs.get((endpoint, "v011"))
            if old:
                ratios = [mine["rps"] / theirs["rps"] for mine, theirs in zip(found, old)]
                results[endpoint, side]["round_ratio"] = statistics.median(ratios)
    finally:
        admin_sql(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        flush_redis()

    print(f"\nours: {versions(sys.executable)}\nv011: {versions(sides['v011'])}")
    print(f"list = GET /api/jobs/?limit={args.jobs} ({args.jobs} jobs, a quarter running); detail = a running job.")
    print(
        f"One synchronous gunicorn worker per side, one client loop, session auth, PostgreSQL "
        f"(CONN_MAX_AGE={args.conn_max_age}), Redis DB 10; {args.rounds} rounds of {args.seconds:g} s, the sides "
        f"taking turns; requests/s of the best round, ratios also per round (median).\n"
    )
    print(
        "| endpoint | side | requests/s | vs 0.1.1 (best rounds) | vs 0.1.1 (median of rounds) | median ms "
        "| server CPU ms/request | CPU vs 0.1.1 | DB queries/request | Redis round trips/request |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for endpoint in paths:
        base = results[(endpoint, "v011")]
        for side in sides:
            if (endpoint, side) not in results:
                continue
            r = results[(endpoint, side)]
            target = f" (target {TARGETS[endpoint]}x)" if side == "ours" else ""
            print(
                f"| {endpoint} | {side} | {r['rps']:.1f} | {r['rps'] / base['rps']:.2f}x | {r['round_ratio']:.2f}x{target} "
                f"| {r['p50_ms']:.2f} "
                f"| {r['server_cpu_ms']:.2f} | {base['server_cpu_ms'] / r['server_cpu_ms']:.2f}x "
                f"| {r['queries']} | {r['store_trips']} |"
            )
    floor, old_detail = results[("floor", "v011")], results[("detail", "v011")]
    floor_detail = results[("floor_detail", "v011")]
    print(
        f"\nfloor = GET /api/floor/: an authenticated DRF view returning a constant, served by 0.1.1's "
        f"project. Every detail request pays it, so no detail endpoint can beat 0.1.1's by more than "
        f"{floor['rps'] / old_detail['rps']:.2f}x in requests/s ({old_detail['server_cpu_ms'] / floor['server_cpu_ms']:.2f}x in CPU)."
        f"\nfloor_detail = GET /api/floor/<id>/: the same view reading the job's row and its Redis key. No detail "
        f"that shows live progress can beat 0.1.1's by more than {floor_detail['rps'] / old_detail['rps']:.2f}x "
        f"({old_detail['server_cpu_ms'] / floor_detail['server_cpu_ms']:.2f}x in CPU)."
    )
    if args.json:
        args.json.write_text(json.dumps({f"{e}/{s}": r for (e, s), r in results.items()}, indent=2))


if __name__ == "__main__":
    main()
