"""Failure tests: real workers, real processes, real outages.

For every executor that has landed (core's ``immediate``; the root project's
``SubprocessExecutor``, a worker process per job that any process can kill;
``celery``, ``django_tasks``, ``rq`` and ``dramatiq`` when their distributions
are installed, with real ``celery worker`` / ``db_worker`` / ``manage.py
ferry_rqworker`` / ``dramatiq`` processes; Dramatiq twice, on its Redis broker
and on RabbitMQ):

* **kill -9 a worker mid-job**: the job ends ``failed`` ("worker lost") or, with
  a retry policy, runs again and finishes, within the heartbeat limit; never
  stuck ``started``. The time from the kill to the reaper's recovery is measured.
  What is killed is the process running the body: the runner's own process, a
  Celery pool process, the ``db_worker``, an RQ work horse (its worker lives on
  and files the RQ job failed), a Dramatiq worker process (its main process then
  shuts the whole worker down).
* **Redis down for 10 s mid-job** (the progress store's Redis, and the broker of
  Celery, RQ and Dramatiq's Redis broker): the job finishes and its final state
  is right.
* **A job that ignores cancellation and sleeps past its timeout** is killed
  within timeout + grace: by its isolated process being stopped
  (``isolation = "process"``, every executor) and through ``executor.kill``
  (executors that ``supports_kill``).
* **A job delivered twice runs once.**

Two reapers (``manage.py ferry reap --every 0.5``) run throughout every test,
as a deployment with several cron hosts would. Settings: ``HEARTBEAT_INTERVAL``
0.5 s, ``HEARTBEAT_TIMEOUT`` 3 s, ``TIMEOUT_GRACE`` 2 s. Every test counts
jobs lost, stuck and run twice (all must be zero), per executor, into the
summary printed at the end of the run and written to
``tests/.results/failures.json`` (``tests/conftest.py``).

The private Redis is a ``redis-server`` started on a free port for the session
(database 0: progress store, Celery; 3: RQ; 2: Dramatiq). RabbitMQ is the shared
one; Dramatiq's jobs there go to a queue of this run only, deleted at the end.
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
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone
from ferry_root_testproject import deliveries
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

ENGINES = ("subprocess", "immediate", "celery", "django_tasks", "rq", "dramatiq_redis", "dramatiq_rabbitmq")
#: The queue of every job; on the shared RabbitMQ, one of this run's own.
QUEUE = "default"
AMQP_QUEUE = f"ferry_chaos_{os.getpid()}"
#: Engines this run has set up (their broker state is cleaned up at the end).
USED: set[str] = set()
#: Databases of the private Redis (0 holds the progress store and Celery's broker).
RQ_DB = 3
DRAMATIQ_DB = 2


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
    def queue(self) -> str:
        return AMQP_QUEUE if self.name == "dramatiq_rabbitmq" else QUEUE

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

    def workers(self, n: int):
        """The engine's long-running workers for the block, able to run ``n`` jobs at once."""
        return _started(self.worker_specs(n), f"the {self.name} workers")

    def worker_specs(self, n: int) -> list[Worker]:
        """One ``celery worker`` with ``n`` pool processes, or ``n`` worker processes of one job
        each (``db_worker``, ``ferry_rqworker``, ``dramatiq --processes 1 --threads 1``); none for
        engines that start a process per job. Each runs with this engine as
        ``TASK_FERRY["EXECUTOR"]``, so the retries it schedules come back to this engine."""
        env = _env(self.setting)
        if self.name == "celery":
            return [_celery_worker(n, env)]
        if self.name == "django_tasks":
            return [_db_worker(env) for _ in range(n)]
        if self.name == "rq":
            return [_rq_worker(env) for _ in range(n)]
        if self.name.startswith("dramatiq"):
            return [_dramatiq_worker(self.queue, env, self.pid_dir) for _ in range(n)]
        return []

    def purge(self) -> None:
        """Drop what this engine's broker still holds once its workers are gone (the message of a
        killed worker, waiting for redelivery), so none of it reaches the next test's workers."""
        if self.name == "rq":
            _private_redis(RQ_DB).flushdb()
        elif self.name == "dramatiq_redis":
            _private_redis(DRAMATIQ_DB).flushdb()
        elif self.name == "dramatiq_rabbitmq":
            self.executor.broker.flush(self.queue)  # the queue, its delay queue and its dead letters

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
        job = _pending_job(type_name, self.queue, **fields)
        self._submit(job)
        return job.pk

    def deliver_twice(self, type_name: str, **fields) -> int:
        """A committed job whose run reaches the workers twice, at the same time."""
        job = _pending_job(type_name, self.queue, **fields)
        if self.name == "immediate":
            for _ in range(2):
                self._spawn("import sys; from task_ferry.runner import run_job; run_job(int(sys.argv[1]))", str(job.pk))
        else:
            self._submit(job)
            # RQ and Dramatiq's Redis broker keep one record per message id: a second enqueue under
            # the same id replaces the first instead of adding a delivery. There the second delivery
            # is a second message for the same job, as a re-dispatch would send.
            self._submit(job, uuid.uuid4().hex if self.name in ("rq", "dramatiq_redis") else None)
        return job.pk

    def handled_twice(self, job_id: int) -> bool:
        """Both deliveries of ``job_id`` have been handled (one ran it, one skipped it)."""
        if self.name in ("immediate", "subprocess"):
            return all(proc.poll() is not None for proc in self._procs(job_id))
        if self.name == "celery":
            from ferry_root_testproject.celery_app import done

            return done(job_id) == 2
        ids = self._engine_ids.get(job_id, [])
        if self.name == "rq":
            from rq.job import Job as RQJob

            # result_ttl=0: RQ deletes a job once its worker is done with it (run or skipped alike).
            return not any(RQJob.exists(task_id, connection=self.executor.connection) for task_id in ids)
        if self.name.startswith("dramatiq"):
            from ferry_root_testproject.dramatiq_brokers import done

            return sum(done(task_id) for task_id in set(ids)) == 2
        from django_tasks_db.models import DBTaskResult

        return len(ids) == 2 and DBTaskResult.objects.filter(id__in=ids, status="SUCCESSFUL").count() == 2

    def _submit(self, job, task_id: str | None = None) -> None:
        task_id = task_id or job.executor_task_id
        dispatch = Dispatch(job.pk, task_id, job.type, job.queue, job.priority, job.run_after)
        engine_id = self.executor.submit(dispatch)
        self._engine_ids.setdefault(job.pk, []).append(engine_id or task_id)

    def _spawn(self, code: str, *args: str) -> None:
        env = _env(self.setting)
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
    if name == "rq":
        return {"BACKEND": "rq", "OPTIONS": {"URL": deliveries.url(RQ_DB)}}
    if name.startswith("dramatiq"):
        broker = name.removeprefix("dramatiq_")
        return {
            "BACKEND": "dramatiq",
            "OPTIONS": {"BROKER": f"ferry_root_testproject.dramatiq_brokers:{broker}_broker"},
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
    if name == "rq" and not django_settings.HAS_RQ:
        return "task-ferry-rq (and rq) is not installed: pip install -e packages/task-ferry-rq"
    if name.startswith("dramatiq") and not django_settings.HAS_DRAMATIQ:
        return (
            'task-ferry-dramatiq (and dramatiq) is not installed: pip install -e "packages/task-ferry-dramatiq[redis]"'
        )
    if name == "dramatiq_rabbitmq":
        if not django_settings.HAS_PIKA:
            return 'pika is not installed: pip install "dramatiq[rabbitmq]"'
        from ferry_root_testproject.dramatiq_brokers import AMQP_URL

        where = urlsplit(AMQP_URL)
        try:
            socket.create_connection((where.hostname, where.port or 5672), timeout=2).close()
        except OSError as exc:
            return (
                f"RabbitMQ is not reachable at {where.hostname}:{where.port or 5672} ({exc}): rabbitmq-server -detached"
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
    USED.update(available)
    pid_dir = tempfile.mkdtemp(prefix="ferry-chaos-")
    setting_of = {name: _executor_setting(name, pid_dir) for name in available}
    _configure(settings, redis, setting_of[available[0]])
    engines: list[Engine] = []
    try:
        with ExitStack() as stack:
            # Two reapers at once, as several cron hosts would run them.
            for _ in range(2):
                stack.enter_context(running(bootstrap_args("ferry", "reap", "--every", str(REAP_EVERY)), env=_env()))
            engines = [Engine(name, setting_of[name], pid_dir, stack) for name in available]
            try:
                yield engines
            finally:
                _kill_leftovers(pid_dir)
        for engine in engines:
            engine.purge()
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


@pytest.fixture(scope="session", autouse=True)
def _amqp_queue_deleted() -> Iterator[None]:
    """This run's RabbitMQ queue (and Dramatiq's delay and dead-letter queues) is deleted at the end."""
    yield
    if "dramatiq_rabbitmq" in USED:
        import pika
        from ferry_root_testproject.dramatiq_brokers import AMQP_URL

        with pika.BlockingConnection(pika.URLParameters(AMQP_URL)) as connection:
            channel = connection.channel()
            for name in (AMQP_QUEUE, f"{AMQP_QUEUE}.DQ", f"{AMQP_QUEUE}.XQ"):
                channel.queue_delete(name)


def _env(executor=None) -> dict[str, str]:
    """A worker's (or reaper's) environment: this test's settings, with ``executor`` as
    ``TASK_FERRY["EXECUTOR"]`` if given."""
    ferry = {**django_settings.TASK_FERRY, **({"EXECUTOR": executor} if executor else {})}
    forward = (*FORWARDED_SETTINGS, *(["TASKS"] if django_settings.HAS_DJANGO_TASKS else []))
    return child_env(settings={"TASK_FERRY": ferry}, forward=forward)


def _private_redis(db: int):
    import redis

    return redis.Redis.from_url(deliveries.url(db), socket_timeout=2, socket_connect_timeout=2)


def _kill_leftovers(pid_dir: str) -> None:
    for name in os.listdir(pid_dir):
        if name.endswith(".log"):
            continue
        try:
            os.kill(int(name.rsplit(".", 1)[1]), signal.SIGKILL)
        except (ProcessLookupError, ValueError, IndexError):
            pass


@dataclass
class Worker:
    """How to start one worker process and know it is ready."""

    args: list[str]
    env: dict[str, str]
    ready: Callable[[], object]
    #: Called with the process before it is stopped (SIGTERM to its process group).
    before_stop: Callable[[subprocess.Popen], None] | None = None


@contextmanager
def _started(workers: list[Worker], what: str) -> Iterator[None]:
    """Start every worker at once, then wait until all are ready (starting them one after the
    other would cost the sum of their start-ups); stop them all at the end."""
    with ExitStack() as stack:
        procs = []
        for worker in workers:
            proc = stack.enter_context(running(worker.args, env=worker.env))
            if worker.before_stop is not None:
                stack.callback(worker.before_stop, proc)
            procs.append(proc)

        def ready() -> bool:
            for worker, proc in zip(workers, procs, strict=True):
                if proc.poll() is not None:
                    raise AssertionError(f"{what}: {' '.join(worker.args[3:])!r} exited with {proc.returncode}")
                try:
                    if not worker.ready():
                        return False
                except Exception:
                    return False  # not up yet: the probe's errors are expected while the process starts
            return True

        _wait(ready, f"{what} to be ready")
        yield


def _celery_worker(concurrency: int, env: dict[str, str]) -> Worker:
    from ferry_root_testproject.celery_app import app

    hostname = f"ferry-chaos-{uuid.uuid4().hex[:8]}@localhost"
    args = bootstrap_args(
        "-m", "celery", "-A", "ferry_root_testproject.celery_app:app", "worker",
        "--pool", "prefork", "--concurrency", str(concurrency), "--queues", QUEUE,
        "--hostname", hostname, "--without-gossip", "--without-mingle", "--without-heartbeat",
        "--loglevel", "WARNING",
    )  # fmt: skip
    return Worker(args, env, lambda: app.control.ping(destination=[hostname], timeout=0.5))


def _db_worker(env: dict[str, str]) -> Worker:
    from django_tasks_db.models import DBTaskResult
    from ferry_root_testproject.chaos.tasks import ping

    probe_queue = f"probe-{uuid.uuid4().hex[:8]}"
    probe = ping.using(queue_name=probe_queue).enqueue()
    args = bootstrap_args(
        "db_worker", "--queue-name", f"{QUEUE},{probe_queue}", "--interval", "0.05",
        "--no-startup-delay", "--no-reload", "--worker-id", f"chaos-{uuid.uuid4().hex[:8]}",
    )  # fmt: skip
    return Worker(args, env, DBTaskResult.objects.filter(id=probe.id, status="SUCCESSFUL").exists)


def _rq_worker(env: dict[str, str]) -> Worker:
    """``manage.py ferry_rqworker --with-scheduler default`` (the scheduler runs the retries the
    reaper schedules), ready once registered and once one worker holds the queue's scheduler lock."""
    name = f"ferry-chaos-{uuid.uuid4().hex[:8]}"
    args = bootstrap_args("ferry_rqworker", "--name", name, "--with-scheduler", "--logging-level", "WARNING", QUEUE)

    def ready() -> bool:
        with _private_redis(RQ_DB) as conn:
            return conn.exists(f"rq:worker:{name}", f"rq:scheduler-lock:{QUEUE}") == 2

    def before_stop(proc: subprocess.Popen) -> None:
        # A work horse has a process group of its own, which running()'s group SIGTERM misses:
        # a second SIGTERM (RQ's cold shutdown; RQ ignores one within a second of the first)
        # takes a busy worker's horse down with it.
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                proc.wait(1.5)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    return Worker(args, env, ready, before_stop)


def _dramatiq_worker(queue: str, env: dict[str, str], log_dir: str) -> Worker:
    """``dramatiq task_ferry_dramatiq.worker:broker --processes 1 --threads 1 --queues <queue>``,
    holding one message at a time (``dramatiq_queue_prefetch=1``), so ``n`` workers run ``n``
    jobs and a worker killed mid-job held no other. Dramatiq's main process shuts down when its
    worker process dies: a killed worker is gone for good, as a crashed host would be."""
    log = os.path.join(log_dir, f"dramatiq-{uuid.uuid4().hex[:8]}.log")
    args = bootstrap_args(
        "-m", "dramatiq", "task_ferry_dramatiq.worker:broker", "--processes", "1", "--threads", "1",
        "--queues", queue, "--worker-shutdown-timeout", "5000", "--log-file", log,
    )  # fmt: skip

    def ready() -> bool:
        with open(log) as f:
            return "Worker process is ready for action." in f.read()

    return Worker(args, {**env, "dramatiq_queue_prefetch": "1"}, ready)


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


def _pending_job(type_name: str, queue: str, **fields) -> ConformanceJob:
    """A committed pending job on ``queue`` that no executor was told about."""
    ct = ContentType.objects.get_for_model(ConformanceJob)
    return ConformanceJob._base_manager.create(
        content_type=ct, type=type_name, queue=queue, executor_task_id=uuid.uuid4().hex, **fields
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
    counts = TALLY.counts(engine.name)
    for pk, (state, code) in expected.items():
        job = ConformanceJob._base_manager.get(pk=pk)
        attempts = JobAttempt.objects.filter(job_id=pk).count()
        counts.jobs += 1
        if job.state == JOB_STARTED:
            counts.stuck += 1
            problems.append(f"job {pk} is stuck started")
        elif (job.state, job.error_code) != (state, code):
            counts.lost += 1
            problems.append(f"job {pk} ended {job.state!r}/{job.error_code!r}, expected {state!r}/{code!r}")
        duplicates = max(0, job.body_runs - job.attempts)
        if duplicates or attempts != job.attempts:
            counts.duplicate_runs += duplicates
            problems.append(f"job {pk}: {job.body_runs} body runs for {job.attempts} attempts ({attempts} recorded)")
    assert not problems, f"{engine.name}: " + "; ".join(problems)


def _settle(job_ids, states, what: str, timeout: float = PATIENCE) -> None:
    try:
        _wait(lambda: all(_state(pk) in states for pk in job_ids), what, timeout)
    except AssertionError as exc:
        rows = Job._base_manager.filter(pk__in=job_ids).values_list("pk", "state", "attempts", "error")
        raise AssertionError(f"{exc}; the jobs (id, state, attempts, error): {sorted(rows)}") from None


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


#: 20 s of work: the first job started must still be running when the last one has started.
STEPS = 200


def test_redis_down_for_10_seconds_mid_job(every_engine, chaos_redis):
    """The private Redis (the progress store; the broker of Celery, RQ and Dramatiq's Redis
    broker) stops for 10 s while two jobs run on every executor at once: they keep running
    (heartbeats go to the database), finish, and say so."""
    with _started([worker for engine in every_engine for worker in engine.worker_specs(2)], "every worker"):
        jobs = {
            engine.name: [engine.start("chaos_work", steps=STEPS, step_sleep=0.1) for _ in range(2)]
            for engine in every_engine
        }
        every_job = [pk for ids in jobs.values() for pk in ids]
        for pk in every_job:
            _body_pid(pk)
        time.sleep(1.0)
        before = {pk: _state(pk) for pk in every_job}
        assert set(before.values()) == {JOB_STARTED}, f"every job must be mid-run when Redis stops: {before}"
        chaos_redis.stop()
        try:
            time.sleep(10)
            # On a loaded machine the first jobs started seconds before the last, and may end
            # during the outage: finished is fine, anything else is not.
            during = {pk: _state(pk) for pk in every_job}
            assert set(during.values()) <= {JOB_STARTED, JOB_FINISHED}, f"a job did not survive the outage: {during}"
        finally:
            chaos_redis.start()
        _settle(every_job, (JOB_FINISHED, JOB_FAILED, JOB_CANCELLED), "the jobs to end after the outage")
    for engine in every_engine:
        for pk in jobs[engine.name]:
            job = ConformanceJob._base_manager.get(pk=pk)
            assert (job.progress_percentage, (job.result or {}).get("steps")) == (100, STEPS), engine.name
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
