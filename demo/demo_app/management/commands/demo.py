"""``manage.py demo``: the whole demo in one command.

Migrates the SQLite database, creates the demo user, starts a worker as a subprocess
(``db_worker`` by default, a Celery worker with ``--engine celery``), serves the page and
the REST API on a threaded WSGI server in this process, and prints the URL. Ctrl+C
(SIGINT), SIGTERM or SIGHUP stop the server and then the worker; a worker that dies on
its own stops the demo too. The worker runs in its own process group, which is the
group that is stopped (Celery's pool processes included), and on Linux it is also told
by the kernel to stop if this process dies without cleaning up (``PR_SET_PDEATHSIG``).
A thread runs task-ferry's reaper every few seconds, as a deployment would from cron.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from django.conf import settings
from django.core.management import BaseCommand, CommandError, call_command

MANAGE = Path(settings.BASE_DIR) / "manage.py"
STOP_GRACE = 5.0  # seconds the worker gets to finish its running job before it is killed
REAP_EVERY = 5.0  # seconds between two passes of the reaper


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, between fork and exec
    """Linux: have the kernel send SIGTERM to this child when its parent dies."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class _Stop(Exception):
    """Raised in the main thread by SIGTERM / SIGHUP, like KeyboardInterrupt for SIGINT."""


class Command(BaseCommand):
    help = "Run the task-ferry demo: a worker, the web page and the REST API; Ctrl+C stops everything."

    def add_arguments(self, parser):
        parser.add_argument(
            "--engine",
            choices=settings.ENGINES,
            default=settings.ENGINE,
            help="django-tasks (default: SQLite, db_worker, database store) or celery (Celery worker, "
            "Redis broker and redis store). Same as FERRY_DEMO_ENGINE.",
        )
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
        parser.add_argument("--reset", action="store_true", help="start from an empty database")

    def handle(self, *args, engine, host, port, reset, **options):
        if engine != settings.ENGINE:  # manage.py sets FERRY_DEMO_ENGINE from --engine before set-up
            raise CommandError(
                f"--engine {engine} disagrees with FERRY_DEMO_ENGINE={settings.ENGINE}; give one of them."
            )
        if settings.ENGINE == "celery":
            self._check_redis()
        if reset:
            self._reset_database()
        call_command("migrate", verbosity=0, skip_checks=True)  # this command has run them
        from demo_app.views import demo_user

        demo_user()

        httpd = self._bind(host, port)
        worker = self._start_worker()
        stopping = threading.Event()
        self.worker_crashed = None

        def stop(signum, frame):
            raise _Stop(signal.Signals(signum).name)

        try:
            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGHUP, stop)
            threading.Thread(target=self._watch_worker, args=(worker, stopping, httpd), daemon=True).start()
            threading.Thread(target=self._reap, args=(stopping,), daemon=True).start()
            self._banner(host, httpd.server_address[1], worker.pid)
            httpd.serve_forever(poll_interval=0.2)
        except (KeyboardInterrupt, _Stop):
            pass
        finally:
            stopping.set()
            httpd.server_close()
            self._stop_worker(worker)
        if self.worker_crashed is not None:
            raise CommandError(f"the worker exited on its own with code {self.worker_crashed}; see its output above.")

    # ── Parts ──────────────────────────────────────────────────────────────────

    def _banner(self, host: str, port: int, worker_pid: int) -> None:
        url = f"http://{host if ':' not in host else f'[{host}]'}:{port}/"
        engine = (
            "Django tasks (django-tasks-db, db_worker) + database store"
            if settings.ENGINE == "django-tasks"
            else f"Celery (broker {settings.REDIS_URL}) + redis store"
        )
        self.stdout.write(
            f"\ntask-ferry demo running at {url}\n"
            f"  engine: {engine}; worker pid {worker_pid}\n"
            f"  database: {settings.DATABASES['default']['NAME']}\n"
            "  Ctrl+C stops the server and the worker.\n"
        )
        self.stdout.flush()

    def _check_redis(self) -> None:
        import redis

        try:
            redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2).ping()
        except redis.RedisError as exc:
            raise CommandError(
                f"The Celery engine needs Redis at {settings.REDIS_URL} (set FERRY_DEMO_REDIS_URL to use another): "
                f"{str(exc).rstrip('.')}.\nStart one with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379"
            ) from exc

    def _reset_database(self) -> None:
        name = Path(settings.DATABASES["default"]["NAME"])
        for path in (name, name.with_name(name.name + "-wal"), name.with_name(name.name + "-shm")):
            path.unlink(missing_ok=True)
        self.stdout.write(f"Removed {name}.")

    def _bind(self, host: str, port: int):
        from django.contrib.staticfiles.handlers import StaticFilesHandler
        from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
        from django.core.wsgi import get_wsgi_application

        try:
            httpd = ThreadedWSGIServer((host, port), WSGIRequestHandler, ipv6=":" in host)
        except OSError as exc:
            raise CommandError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another port: ./dev demo --port {port + 1}"
            ) from exc
        # Event streams stay open as long as a page follows a job: don't let them hold up the exit.
        httpd.daemon_threads = True
        httpd.set_app(StaticFilesHandler(get_wsgi_application()))
        return httpd

    def _worker_command(self) -> list[str]:
        if settings.ENGINE == "django-tasks":
            return [
                sys.executable, str(MANAGE), "db_worker",
                "--queue-name", "default",
                "--interval", "0.2",
                "--no-startup-delay",
                "--no-reload",
            ]  # fmt: skip
        return [
            sys.executable, "-m", "celery", "-A", "demo_project.celery:app", "worker",
            "--pool", "prefork", "--concurrency", "2", "-Q", "default",
            "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
        ]  # fmt: skip

    def _start_worker(self) -> subprocess.Popen:
        env = {**os.environ, "FERRY_DEMO_ENGINE": settings.ENGINE}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(settings.BASE_DIR), env.get("PYTHONPATH", "")]))
        return subprocess.Popen(
            self._worker_command(),
            cwd=settings.BASE_DIR,
            env=env,
            # Its own process group: Ctrl+C reaches this process only, which then stops the
            # worker in order (after the server) and waits for it.
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )

    def _watch_worker(self, worker: subprocess.Popen, stopping: threading.Event, httpd) -> None:
        code = worker.wait()
        if not stopping.is_set():
            self.worker_crashed = code
            self.stderr.write(f"The worker exited on its own (code {code}); stopping the demo.")
            httpd.shutdown()

    def _reap(self, stopping: threading.Event) -> None:
        """What a deployment runs from cron (``manage.py ferry reap``): ends jobs whose worker
        was lost, e.g. killed by a previous demo that could not wait for its job."""
        from django.db import connections

        from task_ferry.reaper import reap

        while not stopping.is_set():
            try:
                reap()
            except Exception as exc:  # a locked SQLite file, say: try again next round
                self.stderr.write(f"reaper: {exc}")
            finally:
                connections.close_all()
            stopping.wait(REAP_EVERY)

    def _stop_worker(self, worker: subprocess.Popen) -> None:
        if worker.poll() is not None:
            return
        self.stdout.write(f"Stopping the worker (it may finish its running job, up to {STOP_GRACE:g} s)…")
        self.stdout.flush()
        try:
            os.killpg(worker.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            worker.wait(timeout=STOP_GRACE)
        except (subprocess.TimeoutExpired, KeyboardInterrupt, _Stop):
            pass
        # Whatever is left of the group (the worker, Celery's pool processes) goes now.
        try:
            os.killpg(worker.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        worker.wait()
        self.stdout.write("Stopped.")
