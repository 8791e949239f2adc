"""Where the API's time goes, in-process (Django's test client, no HTTP server).

    python packages/task-ferry-drf/benchmarks/profile_api.py cpu      # CPU ms per list / detail request
    python packages/task-ferry-drf/benchmarks/profile_api.py ab       # list: timestamps as SQL text vs datetimes
    python packages/task-ferry-drf/benchmarks/profile_api.py compiled # list and detail: compiled SQL vs the ORM
    python packages/task-ferry-drf/benchmarks/profile_api.py profile list|detail   # cProfile, by CPU time

Seeds the PostgreSQL database ``ferry_drf_profile`` (dropped at the end) with 200 jobs of one
user, a quarter of them running with a snapshot in Redis database 3 (keys under
``ferry_profile:``, deleted at the end); settings in ``benchproject/profile_settings.py``
(``FERRY_PROFILE_TZ`` picks ``TIME_ZONE``, default UTC). CPU time is this process's
(``time.process_time``), so the figures depend little on the machine's load; the server's
share (PostgreSQL, Redis) is not in them. ``bench_api.py`` measures requests/s through
gunicorn against 0.1.1.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ["DJANGO_SETTINGS_MODULE"] = "benchproject.profile_settings"
DATABASE = "ferry_drf_profile"


def admin_sql(sql: str) -> None:
    import psycopg

    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(sql)


def seed(jobs: int = 200):
    from benchapp.models import ExportJob
    from django.contrib.auth import get_user_model
    from django.contrib.contenttypes.models import ContentType
    from django.core.management import call_command
    from django.utils import timezone

    from task_ferry.conf import get_progress_store
    from task_ferry.protocols import Snapshot

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("bench", password="bench")
    ct = ContentType.objects.get_for_model(ExportJob)
    store, running = get_progress_store(), []
    for n in range(jobs):
        live = n % 4 == 0
        job = ExportJob.objects.create(
            user=user,
            content_type=ct,
            type="export_table",
            table_id=n,
            state="started" if live else "finished",
            progress_percentage=0 if live else 100,
            progress_state="" if live else "Done",
            started_at=timezone.now(),
            finished_at=None if live else timezone.now(),
            attempts=1,
        )
        if live:
            running.append(job.pk)
            store.write(Snapshot(job.pk, "started", n % 100, f"Writing row {n}...", time.time()))
    return user, running


def cpu_ms(client, path: str, n: int, rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(n):
            client.get(path)
        best = min(best, (time.process_time() - started) / n * 1000)
    return best


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "cpu"
    admin_sql(f"DROP DATABASE IF EXISTS {DATABASE}")
    admin_sql(f"CREATE DATABASE {DATABASE}")
    import django

    django.setup()
    from django.db import connections
    from django.test import Client

    from task_ferry.conf import get_progress_store
    from task_ferry_drf import compiled, live, views

    running: list[int] = []
    try:
        user, running = seed()
        client = Client()
        client.force_login(user)
        paths = {"list": "/api/jobs/?limit=200", "detail": f"/api/jobs/{running[len(running) // 2]}/"}
        for path in paths.values():
            assert client.get(path).status_code == 200
        tz = os.environ.get("FERRY_PROFILE_TZ", "UTC")
        if mode == "cpu":
            for name, path in paths.items():
                n = 100 if name == "list" else 1000
                print(f"{name}: {cpu_ms(client, path, n):.2f} ms CPU/request (best of 5 x {n}; TIME_ZONE {tz})")
        elif mode == "ab":
            in_sql = live.renders_timestamps_in_sql
            sides = {"timestamps as datetimes (before)": lambda alias: False, "timestamps as SQL text": in_sql}
            best = dict.fromkeys(sides, float("inf"))
            try:
                for _ in range(8):  # alternate, so both sides see the same machine
                    for name, switch in sides.items():
                        live.renders_timestamps_in_sql = views.renders_timestamps_in_sql = switch
                        compiled.clear()
                        best[name] = min(best[name], cpu_ms(client, paths["list"], 50, rounds=1))
            finally:
                live.renders_timestamps_in_sql = views.renders_timestamps_in_sql = in_sql
            for name, ms in best.items():
                print(f"list, {name}: {ms:.2f} ms CPU/request (best of 8 x 50; TIME_ZONE {tz})")
        elif mode == "compiled":
            real = compiled.compiled
            sides = {"through the ORM (before)": lambda key, build: None, "compiled SQL": real}
            best = {(name, side): float("inf") for name in paths for side in sides}
            try:
                for _ in range(6):  # alternate, so both sides see the same machine
                    for side, switch in sides.items():
                        compiled.clear()
                        compiled.compiled = switch
                        for name, path in paths.items():
                            n = 50 if name == "list" else 300
                            best[name, side] = min(best[name, side], cpu_ms(client, path, n, rounds=1))
            finally:
                compiled.compiled = real
            for (name, side), ms in best.items():
                print(f"{name}, {side}: {ms:.2f} ms CPU/request (best of 6; TIME_ZONE {tz})")
        else:
            path = paths[sys.argv[2] if len(sys.argv) > 2 else "list"]
            profile = cProfile.Profile(time.process_time)
            profile.enable()
            for _ in range(200):
                client.get(path)
            profile.disable()
            pstats.Stats(profile).sort_stats("tottime").print_stats(25)
            pstats.Stats(profile).sort_stats("cumulative").print_stats(40)
    finally:
        if running:
            store = get_progress_store()
            store.client.delete(*[store.key(pk) for pk in running], *[store.cancel_key(pk) for pk in running])
        connections.close_all()
        admin_sql(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


if __name__ == "__main__":
    main()
