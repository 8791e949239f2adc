"""Failure tests: real workers, real processes, real outages.

For every executor that has landed (core's ``immediate``; the root project's
``SubprocessExecutor``, a worker process per job that any process can kill;
``celery`` and ``django_tasks`` when their distributions are installed, with
real ``celery worker`` / ``db_worker`` processes):

* **kill -9 a worker mid-job**: the job ends ``failed`` ("worker lost") or, with
  a retry policy, runs again and finishes, within the heartbeat limit; never
  stuck ``started``. The time from the kill to the reaper's recovery is measured.
* **Redis down for 10 s mid-job** (the progress store's Redis, and Celery's
  broker): the job finishes and its final state is right.
* **A job that ignores cancellation and sleeps past its timeout** is killed
  within timeout + grace: by its isolated process being stopped
  (``isolation = "process"``, every executor) and through ``executor.kill``
  (executors that ``supports_kill``).
* **A job delivered twice runs once.**

Two reapers (``manage.py ferry reap --every 0.5``) run throughout every test,
as a deployment with several cron hosts would. Settings: ``HEARTBEAT_INTERVAL``
0.5 s, ``HEARTBEAT_TIMEOUT`` 3 s, ``TIMEOUT_GRACE`` 2 s. Every test counts
jobs lost, stuck and run twice (all must be zero) into the summary printed at
the end of the run (``tests/conftest.py``).

The private Redis is a ``redis-server`` started on a free port for the session.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import pytest
from django.conf import settings as django_settings
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone
from ferry_root_testproject.tally import TALLY

from task_ferry import conf, plugins
from task_ferry.executors.base import instantiate
from task_ferry.handler import JobHandler
from task_ferry.models import Job, JobAttempt, JobLog
from task_ferry.protocols import Dispatch
from task_ferry.states import (
    ERROR_TIMEOUT,
    ERROR_WORKER_LOST,
    JOB_CANCELLED,
    JOB_FAILED,
    JOB_FINISHED,
    JOB_PENDING,
    JOB_RETRYING,
    JOB_STARTED,
)
from task_ferry.testing.models import ConformanceJob
from task_ferry.testing.subprocess import FORWARDED_SETTINGS, bootstrap_args, child_env, running

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.slow]

HEARTBEAT_INTERVAL = 0.5
HEARTBEAT_TIMEOUT = 3.0
TIMEOUT_GRACE = 2.0
REAP_EVERY = 0.5
#: ChaosStubborn / ChaosSleeper's timeout.
JOB_TIMEOUT = 2.0
#: Waiting for anything to happen in a worker.
PATIENCE = 60

ENGINES = ("subprocess", "immediate", "celery", "django_tasks")


# ── The private Redis ──────────────────────────────────────────────────────────


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    """A ``redis-server`` of the tests' own, which they may stop and start again."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed; the failure tests start one of their own (apt install redis)")
        self.binary = binary
        self.port = _free_port()
        self.dir = tempfile.mkdtemp(prefix="ferry-chaos-redis-")
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen([*args, "--dir", self.dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"the private redis-server on port {self.port} did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(scope="session")
def chaos_redis() -> Iterator[PrivateRedis]:
    redis = PrivateRedis()
    redis.start()
    # Read by ferry_root_testproject.celery_app, here and (through the environment) in every worker.
    os.environ["FERRY_CHAOS_REDIS_URL"] = redis.url
    yield redis
    redis.stop()
    shutil.rmtree(redis.dir, ignore_errors=True)


# ── Engines: an executor and the workers it needs ──────────────────────────────


@dataclass
class Engine:
    """One executor under test: how jobs reach it and the workers it needs."""

    name: str
    setting: object
    pid_dir: str
    stack: ExitStack

    @property
    def executor(self):
        """The executor instance, built from this engine's setting (whatever ``TASK_FERRY`` says)."""
        if not hasattr(self, "_executor"):
            backend = self.setting["BACKEND"] if isinstance(self.setting, dict) else self.setting
            options = self.setting.get("OPTIONS", {}) if isinstance(self.setting, dict) else {}
            self._executor = instantiate(plugins.EXECUTORS.load(backend), dict(options))
        return self._executor

    @property
    def supports_kill(self) -> bool:
        return bool(getattr(self.executor, "supports_kill", False))

    # Workers

    @contextmanager
    def workers(self, n: int) -> Iterator[None]:
        """The engine's long-running workers, able to run ``n`` jobs at once (nothing for
        engines that start a process per job)."""
        with ExitStack() as stack:
            if self.name == "celery":
                stack.enter_context(_celery_worker(n))
            elif self.name == "django_tasks":
                for _ in range(n):
                    stack.enter_context(_db_worker())
            yield

    # Jobs

    def start(self, type_name: str, **fields) -> int:
        """A committed job, handed to this engine; returns its id."""
        if self.name == "immediate":
            # The job runs inside the process that creates it: that process is the worker.
            tag = uuid.uuid4().hex
            code = (
                "import json, sys; from task_ferry.handler import JobHandler; "
                "JobHandler.create_and_start(None, sys.argv[1], **json.loads(sys.argv[2]))"
            )
            self._spawn(code, type_name, json.dumps({**fields, "fail_with": tag}))
            probe = ConformanceJob._base_manager.filter(fail_with=tag).values_list("pk", flat=True).first
            return _wait(probe, "the immediate worker to create its job")
        job = _pending_job(type_name, **fields)
        self._submit(job)
        return job.pk

    def deliver_twice(self, type_name: str, **fields) -> int:
        """A committed job whose run reaches the workers twice, at the same time."""
        job = _pending_job(type_name, **fields)
        if self.name == "immediate":
            for _ in range(2):
                self._spawn("import sys; from task_ferry.runner import run_job; run_job(int(sys.argv[1]))", str(job.pk))
        else:
            self._submit(job)
            self._submit(job)
        return job.pk

    def handled_twice(self, job_id: int) -> bool:
        """Both deliveries of ``job_id`` have been handled (one ran it, one skipped it)."""
        if self.name in ("immediate", "subprocess"):
            return all(proc.poll() is not None for proc in self._procs(job_id))
        if self.name == "celery":
            from ferry_root_testproject.celery_app import done

            return done(job_id) == 2
        from django_tasks_db.models import DBTaskResult

        ids = self._engine_ids.get(job_id, [])
        return len(ids) == 2 and DBTaskResult.objects.filter(id__in=ids, status="SUCCESSFUL").count() == 2

    def _submit(self, job) -> None:
        dispatch = Dispatch(job.pk, job.executor_task_id, job.type, job.queue, job.priority, job.run_after)
        engine_id = self.executor.submit(dispatch)
        self._engine_ids.setdefault(job.pk, []).append(engine_id)

    def _spawn(self, code: str, *args: str) -> None:
        env = child_env(settings={"TASK_FERRY": {**django_settings.TASK_FERRY, "EXECUTOR": self.setting}})
        log = open(os.path.join(self.pid_dir, f"immediate-{uuid.uuid4().hex[:8]}.log"), "w")  # noqa: SIM115
        with log:
            proc = subprocess.Popen(
                bootstrap_args("-c", code, *args), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        proc.ferry_args = args
        self._children.append(proc)
        self.stack.callback(_reap_process, proc)

    def _procs(self, job_id: int) -> list:
        if self.name == "immediate":
            return [p for p in self._children if str(job_id) in p.ferry_args]
        return [p for p in self.executor.launched if p.ferry_job_id == job_id]

    def __post_init__(self) -> None:
        self._children: list = []
        self._engine_ids: dict[int, list] = {}


def _reap_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def _executor_setting(name: str, pid_dir: str):
    if name == "subprocess":
        return {
            "BACKEND": "ferry_root_testproject.chaos.executors.SubprocessExecutor",
            "OPTIONS": {"PID_DIR": pid_dir, "KILL_GRACE": TIMEOUT_GRACE},
        }
    if name == "immediate":
        return {"BACKEND": "immediate", "OPTIONS": {"RAISE_EXCEPTIONS": False}}
    if name == "celery":
        return {
            "BACKEND": "celery",
            "OPTIONS": {"APP": "ferry_root_testproject.celery_app:app", "KILL_GRACE": TIMEOUT_GRACE},
        }
    return {"BACKEND": "django_tasks"}


def _unavailable(name: str) -> str | None:
    if name == "celery" and not django_settings.HAS_CELERY:
        return "task-ferry-celery (and celery) is not installed: pip install -e packages/task-ferry-celery"
    if name == "django_tasks" and not django_settings.HAS_DJANGO_TASKS:
        return (
            "task-ferry-django-tasks (and django-tasks-db) is not installed: "
            'pip install -e "packages/task-ferry-django-tasks[backport]" "django-tasks-db[compat]"'
        )
    return None


def _configure(settings, redis: PrivateRedis, executor_setting) -> None:
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        # The progress store's Redis, the one the outage test stops. Short socket timeouts: an
        # outage makes store calls fail fast instead of hanging a job's flush.
        "chaos": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis.url,
            "OPTIONS": {"socket_timeout": 1, "socket_connect_timeout": 1},
        },
    }
    settings.TASK_FERRY = {
        "EXECUTOR": executor_setting,
        "PROGRESS_STORE": {"BACKEND": "cache", "OPTIONS": {"CACHE_ALIAS": "chaos"}},
        "PROGRESS_FLUSH_INTERVAL": 0.1,
        "HEARTBEAT_INTERVAL": HEARTBEAT_INTERVAL,
        "HEARTBEAT_TIMEOUT": HEARTBEAT_TIMEOUT,
        "TIMEOUT_GRACE": TIMEOUT_GRACE,
    }


@contextmanager
def _engines(names, settings, redis: PrivateRedis) -> Iterator[list[Engine]]:
    """Engines for ``names`` (those available; the others are skipped with the reason),
    with ``TASK_FERRY["EXECUTOR"]`` set to the first one's, and two reapers running."""
    available = []
    for name in names:
        reason = _unavailable(name)
        if reason:
            TALLY.skipped[name] = reason
        else:
            available.append(name)
    if not available:
        pytest.skip(TALLY.skipped[names[0]])
    pid_dir = tempfile.mkdtemp(prefix="ferry-chaos-")
    setting_of = {name: _executor_setting(name, pid_dir) for name in available}
    _configure(settings, redis, setting_of[available[0]])
    try:
        with ExitStack() as stack:
            # Two reapers at once, as several cron hosts would run them.
            for _ in range(2):
                stack.enter_context(running(bootstrap_args("ferry", "reap", "--every", str(REAP_EVERY)), env=_env()))
            try:
                yield [Engine(name, setting_of[name], pid_dir, stack) for name in available]
            finally:
                _kill_leftovers(pid_dir)
    finally:
        conf.reset()
        shutil.rmtree(pid_dir, ignore_errors=True)


@pytest.fixture(params=ENGINES)
def engine(request, chaos_redis, transactional_db, settings) -> Iterator[Engine]:
    """One executor (the test's parameter), configured as ``TASK_FERRY["EXECUTOR"]``:
    the reapers retry and kill through it."""
    reason = _unavailable(request.param)
    if reason:
        TALLY.skipped[request.param] = reason
        pytest.skip(reason)
    with _engines([request.param], settings, chaos_redis) as engines:
        yield engines[0]


@pytest.fixture
def every_engine(chaos_redis, transactional_db, settings) -> Iterator[list[Engine]]:
    """Every available executor at once (jobs are handed to each directly)."""
    with _engines(list(ENGINES), settings, chaos_redis) as engines:
        yield engines


def _env() -> dict[str, str]:
    return child_env(forward=(*FORWARDED_SETTINGS, *(["TASKS"] if django_settings.HAS_DJANGO_TASKS else [])))


def _kill_leftovers(pid_dir: str) -> None:
    for name in os.listdir(pid_dir):
        if name.endswith(".log"):
            continue
        try:
            os.kill(int(name.rsplit(".", 1)[1]), signal.SIGKILL)
        except (ProcessLookupError, ValueError, IndexError):
            pass


@contextmanager
def _celery_worker(concurrency: int) -> Iterator[subprocess.Popen]:
    from ferry_root_testproject.celery_app import app

    hostname = f"ferry-chaos-{uuid.uuid4().hex[:8]}@localhost"
    args = bootstrap_args(
        "-m", "celery", "-A", "ferry_root_testproject.celery_app:app", "worker",
        "--pool", "prefork", "--concurrency", str(concurrency), "--queues", "default",
        "--hostname", hostname, "--without-gossip", "--without-mingle", "--without-heartbeat",
        "--loglevel", "WARNING",
    )  # fmt: skip
    ready = lambda: app.control.ping(destination=[hostname], timeout=0.5)  # noqa: E731
    with running(args, env=_env(), ready=ready) as proc:
        yield proc


@contextmanager
def _db_worker() -> Iterator[subprocess.Popen]:
    from django_tasks_db.models import DBTaskResult
    from ferry_root_testproject.chaos.tasks import ping

    probe_queue = f"probe-{uuid.uuid4().hex[:8]}"
    probe = ping.using(queue_name=probe_queue).enqueue()
    args = bootstrap_args(
        "db_worker", "--queue-name", f"default,{probe_queue}", "--interval", "0.05",
        "--no-startup-delay", "--no-reload", "--worker-id", f"chaos-{uuid.uuid4().hex[:8]}",
    )  # fmt: skip
    ready = DBTaskResult.objects.filter(id=probe.id, status="SUCCESSFUL").exists
    with running(args, env=_env(), ready=ready) as proc:
        yield proc


# ── Helpers ────────────────────────────────────────────────────────────────────


def _wait(probe, what: str, timeout: float = PATIENCE):
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def _pending_job(type_name: str, **fields) -> ConformanceJob:
    """A committed pending job that no executor was told about."""
    ct = ContentType.objects.get_for_model(ConformanceJob)
    return ConformanceJob._base_manager.create(
        content_type=ct, type=type_name, queue="default", executor_task_id=uuid.uuid4().hex, **fields
    )


def _body_pid(job_id: int, attempt: int = 1) -> int:
    """The pid the job's body logged when attempt ``attempt`` started."""

    def probe():
        line = JobLog.objects.filter(job_id=job_id, message__endswith=f" attempt {attempt}").first()
        return line and int(line.message.split()[1])

    return _wait(probe, f"attempt {attempt} of job {job_id} to start its body")


def _state(job_id: int) -> str:
    return Job._base_manager.filter(pk=job_id).values_list("state", flat=True).get()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie of this process (the immediate engine's children) is dead for our purpose.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _account(engine: Engine, expected: dict[int, tuple[str, str]]) -> None:
    """Count every job into the run's tally and assert this test lost, stuck and
    duplicated nothing. ``expected``: job id -> (state, error_code)."""
    problems = []
    for pk, (state, code) in expected.items():
        job = ConformanceJob._base_manager.get(pk=pk)
        attempts = JobAttempt.objects.filter(job_id=pk).count()
        TALLY.jobs += 1
        if job.state == JOB_STARTED:
            TALLY.stuck += 1
            problems.append(f"job {pk} is stuck started")
        elif (job.state, job.error_code) != (state, code):
            TALLY.lost += 1
            problems.append(f"job {pk} ended {job.state!r}/{job.error_code!r}, expected {state!r}/{code!r}")
        duplicates = max(0, job.body_runs - job.attempts)
        if duplicates or attempts != job.attempts:
            TALLY.duplicate_runs += duplicates
            problems.append(f"job {pk}: {job.body_runs} body runs for {job.attempts} attempts ({attempts} recorded)")
    assert not problems, f"{engine.name}: " + "; ".join(problems)


def _settle(job_ids, states, what: str, timeout: float = PATIENCE) -> None:
    _wait(lambda: all(_state(pk) in states for pk in job_ids), what, timeout)


# ── kill -9 ────────────────────────────────────────────────────────────────────


def test_kill_9_of_a_worker_mid_job_is_recovered_within_the_heartbeat_limit(engine):
    """Two jobs, each in its own worker process, killed together mid-job: the one
    with no retry ends failed ("worker lost"), the one with a retry runs again
    and finishes. Neither stays started longer than the heartbeat limit."""
    with engine.workers(3):  # two killed, and one left for the retry
        lost = engine.start("chaos_work", steps=200, step_sleep=0.1)
        retried = engine.start("chaos_retried", steps=200, step_sleep=0.1)
        pids = {pk: _body_pid(pk) for pk in (lost, retried)}
        time.sleep(1.0)  # well into the jobs, heartbeats written
        assert {_state(lost), _state(retried)} == {JOB_STARTED}
        for pid in pids.values():
            os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        recovered: dict[int, float] = {}
        while len(recovered) < 2:
            for pk in (lost, retried):
                if pk not in recovered and _state(pk) != JOB_STARTED:
                    recovered[pk] = time.monotonic() - killed_at
            assert time.monotonic() - killed_at < 30, f"{engine.name}: jobs still started 30 s after kill -9"
            time.sleep(0.02)
        _settle([lost], (JOB_FAILED,), "the lost job to be failed")
        _settle([retried], (JOB_FINISHED,), "the retried job to finish")
    for seconds in recovered.values():
        TALLY.recoveries.append((engine.name, seconds))
    # The last beat is at most 1.5 intervals old (the thread beats half an interval late); a reaper
    # passes every REAP_EVERY; slack for scheduling.
    limit = HEARTBEAT_TIMEOUT + 1.5 * HEARTBEAT_INTERVAL + REAP_EVERY + 1.5
    assert max(recovered.values()) < limit, recovered
    failed = Job._base_manager.get(pk=lost)
    assert failed.error == "worker lost"
    assert list(JobAttempt.objects.filter(job_id=retried).values_list("outcome", flat=True)) == [
        "worker_lost",
        "finished",
    ]
    assert _body_pid(retried, attempt=2) != pids[retried]
    _account(engine, {lost: (JOB_FAILED, ERROR_WORKER_LOST), retried: (JOB_FINISHED, "")})


# ── Redis down for 10 s ────────────────────────────────────────────────────────


def test_redis_down_for_10_seconds_mid_job(every_engine, chaos_redis):
    """The store's Redis (and Celery's broker) stops for 10 s while two jobs run on
    every executor at once: they keep running (heartbeats go to the database),
    finish, and say so."""
    with ExitStack() as workers:
        for engine in every_engine:
            workers.enter_context(engine.workers(2))
        jobs = {
            engine.name: [engine.start("chaos_work", steps=160, step_sleep=0.1) for _ in range(2)]
            for engine in every_engine
        }
        every_job = [pk for ids in jobs.values() for pk in ids]
        for pk in every_job:
            _body_pid(pk)
        time.sleep(1.0)
        chaos_redis.stop()
        try:
            time.sleep(10)
            assert {_state(pk) for pk in every_job} == {JOB_STARTED}, "a job did not survive the outage"
        finally:
            chaos_redis.start()
        _settle(every_job, (JOB_FINISHED, JOB_FAILED, JOB_CANCELLED), "the jobs to end after the outage")
    for engine in every_engine:
        for pk in jobs[engine.name]:
            job = ConformanceJob._base_manager.get(pk=pk)
            assert (job.progress_percentage, job.result["steps"]) == (100, 160), engine.name
            assert JobHandler.get_job(None, pk).get_cached_state() == JOB_FINISHED
        _account(engine, {pk: (JOB_FINISHED, "") for pk in jobs[engine.name]})


# ── Timeouts ───────────────────────────────────────────────────────────────────


def test_a_job_that_ignores_cancellation_is_killed_within_timeout_plus_grace(engine):
    """Isolated stubborn jobs (every executor): one cancelled (it ignores the cancel),
    one left alone; a non-isolated sleeper where the executor can kill. Each body's
    process is gone within timeout + grace of the job's start."""
    with engine.workers(3):
        cancelled = engine.start("chaos_stubborn")
        overdue = engine.start("chaos_stubborn")
        sleeper = engine.start("chaos_sleeper") if engine.supports_kill else None
        watched = [pk for pk in (cancelled, overdue, sleeper) if pk]
        pids = {pk: _body_pid(pk) for pk in watched}
        JobHandler.cancel(None, cancelled)
        gone: dict[int, float] = {}
        deadline = time.monotonic() + PATIENCE
        while len(gone) < len(watched):
            for pk, pid in pids.items():
                if pk not in gone and not _alive(pid):
                    started = Job._base_manager.get(pk=pk).started_at
                    gone[pk] = (timezone.now() - started).total_seconds()
            assert time.monotonic() < deadline, f"{engine.name}: bodies still alive: {pids}, gone: {gone}"
            time.sleep(0.02)
        expected = {cancelled: (JOB_CANCELLED, ""), overdue: (JOB_FAILED, ERROR_TIMEOUT)}
        if sleeper:
            expected[sleeper] = (JOB_FAILED, ERROR_TIMEOUT)
        _settle(list(expected), (JOB_CANCELLED, JOB_FAILED), "the jobs to end")
    for pk, seconds in gone.items():
        TALLY.kills.append((f"{engine.name}, {'isolated' if pk != sleeper else 'executor.kill'}", seconds))
    # Isolated: the runner signals at the deadline (or at its next check after a cancel) and
    # kills after the grace. executor.kill: the reaper steps in after timeout + grace, at its next pass.
    assert gone[overdue] < JOB_TIMEOUT + TIMEOUT_GRACE + 1.0, gone
    assert gone[cancelled] < JOB_TIMEOUT + TIMEOUT_GRACE + 1.0, gone
    if sleeper:
        assert gone[sleeper] < JOB_TIMEOUT + TIMEOUT_GRACE + REAP_EVERY + 2.0, gone
    _account(engine, expected)


# ── Duplicate delivery ─────────────────────────────────────────────────────────


def test_a_job_delivered_twice_runs_once(engine):
    with engine.workers(2):
        jobs = [engine.deliver_twice("chaos_work", steps=10, step_sleep=0.05) for _ in range(3)]
        _settle(jobs, (JOB_FINISHED,), "the doubly delivered jobs to finish")
        _wait(lambda: all(engine.handled_twice(pk) for pk in jobs), "the second deliveries to be handled")
    for pk in jobs:
        assert Job._base_manager.get(pk=pk).attempts == 1
    assert not Job._base_manager.filter(pk__in=jobs, state__in=(JOB_PENDING, JOB_RETRYING)).exists()
    _account(engine, {pk: (JOB_FINISHED, "") for pk in jobs})
