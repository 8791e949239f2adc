"""The runner: the one code path every executor calls to run a job.

An engine's task body is ``run_job(job_id)``: claim the job with a
compare-and-set (a duplicate delivery finds it claimed and does nothing), run
the type's ``run`` with a :class:`~task_ferry.progress.Progress` wired to the
progress store, record the outcome with another compare-and-set, call hooks
and signals, and clear the store entry.

Around the body it keeps the attempt's lifecycle: a heartbeat (see
:mod:`task_ferry.heartbeat`), the attempt's deadline (``JobTimedOut`` at the
first flush past it; or, with ``isolation = "process"``, a killable child, see
:mod:`task_ferry.isolation`), the job's log (:mod:`task_ferry.logs`), a
``JobAttempt`` row per attempt, and the retry policy (:mod:`task_ferry.retry`).
None of it costs a write per increment: a flush writes the store as before,
plus the heartbeat at most once per ``HEARTBEAT_INTERVAL`` and captured log
lines when there are some.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DataError, IntegrityError, connections, router, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from . import heartbeat, retry, signals
from .conf import flush_interval, get_executor, get_progress_store, heartbeat_interval, timeout_grace
from .exceptions import JobCancelled, JobTimedOut, WorkerLost
from .health import store_health
from .logs import RunLog, capture
from .models import Job, JobAttempt
from .progress import Progress
from .protocols import Snapshot
from .registry import JobType, job_type_registry
from .states import (
    ERROR_EXCEPTION,
    ERROR_TIMEOUT,
    ERROR_WORKER_LOST,
    JOB_CANCELLED,
    JOB_FAILED,
    JOB_FINISHED,
    JOB_PENDING,
    JOB_RETRYING,
    JOB_STARTED,
)

logger = logging.getLogger("task_ferry.runner")

#: Outcome of ``run_job`` for a job some other delivery already claimed, or
#: that was cancelled before it started.
SKIPPED = "skipped"


@dataclass
class RunResult:
    job_id: int
    #: ``finished``, ``failed``, ``cancelled``, ``retrying`` (the attempt failed and
    #: another is scheduled; ``exception`` is None) or ``skipped``.
    outcome: str
    value: object = None
    exception: BaseException | None = None
    store_writes: int = 0


class AttemptGone(JobCancelled):
    """Raised in ``run`` when a heartbeat finds this attempt no longer running: it was
    cancelled, or given up on (the reaper ended it or moved it to another attempt)."""


def _timeout_message(timeout: float | None) -> str:
    return f"The job ran longer than its timeout of {timeout:g}s." if timeout else "The job ran past its deadline."


class _Flusher:
    """Called by the root Progress at most once per interval: writes the snapshot and
    reads the cancel flag (one store round trip), writes captured log lines that are
    waiting, beats the heartbeat when it is due, and checks the attempt's deadline."""

    __slots__ = ("beat", "deadline", "job_id", "log", "progress", "store", "store_down", "timeout", "writes")

    def __init__(
        self,
        job_id: int,
        progress: Progress,
        store,
        deadline: float | None = None,
        timeout: float | None = None,
        beat: heartbeat.Beat | None = None,
        log: RunLog | None = None,
    ) -> None:
        self.job_id = job_id
        self.progress = progress
        self.store = store
        self.writes = 0
        self.store_down = False
        self.deadline = deadline
        self.timeout = timeout
        self.beat = beat
        self.log = log

    def __call__(self) -> None:
        p = self.progress
        now = time.time()  # the one clock read of a flush: snapshot time, heartbeat and deadline
        snap = Snapshot(self.job_id, JOB_STARTED, p.percentage, p._label, now)
        try:
            cancel = self.store.write(snap)
            self.writes += 1
            self.store_down = False
            # Every success, not just this flusher's recovery: an outage another job saw
            # (in this process) ends here too, so the next one is reported again.
            store_health.ok(self.store)
        except Exception as exc:  # no store error may reach the job's run()
            self.store_down = True
            store_health.failed(self.store, exc)
            # The database row is authoritative for cancellation: check it while the store is away.
            try:
                cancel = Job._base_manager.filter(pk=self.job_id, state=JOB_CANCELLED).exists()
            except Exception:  # the database is away too: the heartbeat stops, the reaper decides
                cancel = False
        p.flushed()
        log = self.log
        if log is not None and log.buffer:
            log.flush()
        beat = self.beat
        if beat is not None and now >= beat.next_due and heartbeat.beat_inline(beat, now) is False:
            raise AttemptGone()
        if cancel:
            raise JobCancelled()
        if self.deadline is not None and now >= self.deadline:
            raise JobTimedOut(_timeout_message(self.timeout))


def _json_result(job: Job, value: object) -> object:
    if value is None:
        return None
    try:
        json.dumps(value, cls=DjangoJSONEncoder)
    except (TypeError, ValueError) as exc:
        logger.warning(
            "task-ferry: job %s (%s) returned a %s that is not JSON-serialisable (%s); result not stored.",
            job.pk,
            job.type,
            type(value).__name__,
            exc,
        )
        return None
    return value


def _safely(what: str, job: Job, fn, *args) -> None:
    try:
        fn(*args)
    except Exception:
        logger.exception(
            "task-ferry: %s raised for job %s (%s); the job's outcome is unchanged.", what, job.pk, job.type
        )


def _model_for(job_type: str | None) -> type[Job] | None:
    if job_type and job_type in job_type_registry:
        return job_type_registry.get(job_type).model_class
    return None


def load_job(job_id: int, job_type: str | None = None) -> Job:
    """The specific job row: one query when the type is known, two otherwise."""
    model = _model_for(job_type)
    if model is not None:
        return model._base_manager.get(pk=job_id)
    return Job._base_manager.get(pk=job_id).specific


def _claim(job_id: int, job_type: str | None, now) -> Job | None:
    """Claim the job (compare-and-set to ``started``) and load it; None if it was not
    waiting to run. On PostgreSQL the claim and the load are one statement (the same
    compare-and-set, see :func:`_claim_statement`); elsewhere an UPDATE, then the
    SELECT of :func:`load_job`."""
    alias = router.db_for_write(Job)
    if connections[alias].vendor != "postgresql":
        claim = Job._base_manager.filter(pk=job_id).filter(
            Q(state=JOB_PENDING) | Q(state=JOB_RETRYING, run_after__lte=now)
        )
        claimed = claim.update(
            state=JOB_STARTED,
            started_at=now,
            updated_at=now,
            heartbeat_at=now,
            finished_at=None,
            error="",
            human_readable_error="",
            error_code="",
            attempts=F("attempts") + 1,
        )
        if not claimed:
            return None
        try:
            return load_job(job_id, job_type)
        except Job.DoesNotExist:  # the type's table has no row for it: the job's row says another type
            return Job._base_manager.get(pk=job_id).specific
    model = _model_for(job_type)
    claimed, job = _claim_pg(job_id, now, model or Job, alias)
    if not claimed:
        return None
    if job is None:  # claimed, but the type's table has no row for it: the job's row says another type
        return Job._base_manager.get(pk=job_id).specific
    # Type unknown: the row's content type says which model it is (cached per process).
    return job.specific if model is None else job


class _ClaimStatement(NamedTuple):
    sql: str
    compiler: Any
    start: int  # the model's columns in the returned row (after the count): [start:end]
    end: int
    names: list[str]  # their attribute names
    converters: dict  # the SELECT's column converters, as the compiler applies them
    direct: bool  # a plain UPDATE ... RETURNING the model's columns (no count, no SELECT)


#: (model, alias) -> the claim on PostgreSQL; built once per process.
_claim_statements: dict[tuple, _ClaimStatement] = {}


def _claim_statement(model: type[Job], alias: str) -> _ClaimStatement:
    """The claim as one statement. For ``Job`` itself (or a proxy of it) it is the UPDATE
    alone, returning the columns the SELECT of ``model`` would read: a row if it matched,
    none otherwise. For a subclass, the UPDATE is a data-modifying CTE named like the job
    table, so the SELECT of ``model`` (with the subclass's joins) reads the row as it is
    after the UPDATE; the outer query returns one row whether or not the UPDATE matched,
    with the UPDATE's row count first. Parameters: state, started_at, updated_at,
    heartbeat_at, id, pending, retrying, now, then (the CTE only) the SELECT's pk."""
    key = (model, alias)
    cached = _claim_statements.get(key)
    if cached is not None:
        return cached
    connection = connections[alias]
    qn = connection.ops.quote_name
    table = qn(Job._meta.db_table)

    def col(name: str) -> str:
        return qn(Job._meta.get_field(name).column)

    update = (
        f"UPDATE {table} SET {col('state')} = %s, {col('started_at')} = %s, {col('updated_at')} = %s, "
        f"{col('heartbeat_at')} = %s, {col('finished_at')} = NULL, {col('error')} = '', "
        f"{col('human_readable_error')} = '', {col('error_code')} = '', "
        f"{col('attempts')} = {table}.{col('attempts')} + 1 "
        f"WHERE {table}.{col('id')} = %s AND ({table}.{col('state')} = %s "
        f"OR ({table}.{col('state')} = %s AND {table}.{col('run_after')} <= %s)) RETURNING "
    )
    compiler = model._base_manager.db_manager(alias).filter(pk=0).order_by().query.get_compiler(alias)
    select_sql, select_params = compiler.as_sql()
    if list(select_params) != [0]:  # not the one pk parameter this statement expects
        raise RuntimeError(f"task-ferry: unexpected SELECT for the claim of {model.__name__}: {select_sql}")
    # Direct when the SELECT reads the job table alone, as a plain queryset does (a base
    # manager may add joins or filters of its own, which only the CTE's SELECT applies).
    plain = QuerySet(model, using=alias).filter(pk=0).order_by().query.get_compiler(alias).as_sql()[0]
    direct = model._meta.concrete_model is Job and select_sql == plain
    if direct:
        # The SELECT's own columns, so its converters apply as they are (a third of the
        # CTE's cost on the server is planning it).
        columns = [compiler.compile(column[0])[0] for column in compiler.select[: compiler.col_count]]
        sql = update + ", ".join(columns)
    else:
        sql = (
            f"WITH {table} AS ({update}*) SELECT (SELECT count(*) FROM {table}), loaded.* "
            f"FROM (SELECT 1) AS one LEFT JOIN ({select_sql}) AS loaded ON true"
        )
    fields = compiler.klass_info["select_fields"]
    start, end = fields[0], fields[-1] + 1
    names = [column[0].target.attname for column in compiler.select[start:end]]
    # What ``compiler.results_iter`` would work out again for every row (a fifth of a run's CPU).
    converters = compiler.get_converters([column[0] for column in compiler.select[: compiler.col_count]])
    statement = _ClaimStatement(sql, compiler, start, end, names, converters, direct)
    _claim_statements[key] = statement
    return statement


def _claim_pg(job_id: int, now, model: type[Job], alias: str) -> tuple[bool, Job | None]:
    """Whether the claim matched, and the row of ``model`` as it is after the claim
    (None if ``model``'s table has no row for the job)."""
    claim = _claim_statement(model, alias)
    params = [JOB_STARTED, now, now, now, job_id, JOB_PENDING, JOB_RETRYING, now]
    with connections[alias].cursor() as cursor:
        if claim.direct:
            cursor.execute(claim.sql, params)
            row = cursor.fetchone()
            count = row is not None
        else:
            cursor.execute(claim.sql, [*params, job_id])
            count, *row = cursor.fetchone()
    if not count or row[claim.start] is None:  # the first selected column is the primary key
        return bool(count), None
    if claim.converters:
        row = next(iter(claim.compiler.apply_converters([row], claim.converters)))
    return True, model.from_db(alias, claim.names, row[claim.start : claim.end])


def run_job(job_id: int, job_type: str | None = None) -> RunResult:
    """Run one attempt of a job by id. Safe to call twice with the same id, concurrently
    or not: only the call that claims the job runs it.

    The claim is a compare-and-set from ``pending``, or from ``retrying`` once the
    job's ``run_after`` is due; it counts the attempt (``attempts``) and writes the
    first heartbeat. Every later write of this attempt is guarded by its number, so
    a worker that was given up on can never overwrite a later attempt."""
    job = _claim(job_id, job_type, timezone.now())
    if job is None:
        logger.debug("task-ferry: job %s is not waiting to run (duplicate delivery or cancelled); skipped.", job_id)
        return RunResult(job_id, SKIPPED)

    job_type_obj = job_type_registry.get_by_model(job)
    attempt = job.attempts
    timeout = job_type_obj.get_timeout(job)
    deadline = time.time() + timeout if timeout else None
    store = get_progress_store()
    progress = Progress(100)
    run_log = RunLog(job_id)
    job._ferry_log = run_log
    beat = heartbeat.start(job_id, attempt, router.db_for_write(Job), heartbeat_interval())
    flusher = _Flusher(job_id, progress, store, deadline, timeout, beat, run_log)
    progress.attach(flusher, flush_interval())
    signals.send(signals.job_started, job_type_obj, job)

    value = exc = None
    code = ""
    try:
        job_type_obj.before_run(job)
        value = _body(job_type_obj, job, progress, attempt, deadline, timeout)
        outcome = JOB_FINISHED
    except JobCancelled:
        outcome = JOB_CANCELLED
    except Exception as e:  # the job's own failure: record it
        exc, outcome, code = e, JOB_FAILED, _error_code(e)
    finally:
        # Also on SystemExit / KeyboardInterrupt: the heartbeat stops, and the reaper takes over.
        heartbeat.stop(beat)
        if job_type_obj.isolation == "process":
            run_log.reseed()  # the child numbered lines too
        run_log.flush()

    plan = executor = None
    if outcome == JOB_FAILED:
        executor, plan = _retry_plan(job_type_obj, job, exc)
    result = _json_result(job, value) if outcome == JOB_FINISHED else None
    state, ours = _record(job, attempt, outcome, progress, result, exc, code, plan)
    # A cancel that won the race with the failed attempt also cancels the retry.
    retried = ours and plan is not None and state == plan.state
    # Nothing to clear when this attempt never wrote a snapshot and was not cancelled
    # (a cancel's flag is cleared here, or by the canceller whose compare-and-set
    # lost), unless subscribers wait for the final state: a short job then costs
    # no store round trip at all.
    if flusher.writes or state == JOB_CANCELLED or store.supports_subscribe:
        final = Snapshot(job_id, state, job.progress_percentage, job.progress_state, time.time())
        try:
            store.clear(job_id, final)
        except Exception as e:
            store_health.failed(store, e)

    # Hooks belong to whoever recorded the end: this runner, or (for a cancel of a
    # started job) the canceller, who leaves the hooks to the runner.
    if ours and state == JOB_FINISHED:
        signals.send(signals.job_finished, job_type_obj, job)
    elif ours and state == JOB_FAILED and exc is not None:
        logger.error("task-ferry: job %s (%s) failed", job.pk, job.type, exc_info=exc)
        _safely("on_error", job, job_type_obj.on_error, job, exc)
        signals.send(signals.job_failed, job_type_obj, job, exc=exc)
    elif ours and state == JOB_CANCELLED:
        _safely("on_cancelled", job, job_type_obj.on_cancelled, job)
        signals.send(signals.job_cancelled, job_type_obj, job)
    elif retried:
        logger.warning(
            "task-ferry: attempt %s of job %s (%s) failed (%s); attempt %s is scheduled%s.",
            attempt,
            job.pk,
            job.type,
            job.error,
            attempt + 1,
            f" for {job.run_after.isoformat(timespec='seconds')}" if job.run_after else "",
        )
        _safely("on_retry", job, job_type_obj.on_retry, job, exc)
        signals.send(signals.job_retried, job_type_obj, job, exc=exc, automatic=True)
    _safely("after_run", job, job_type_obj.after_run, job)

    if retried:
        if plan.how == retry.INLINE:
            return run_job(job_id, job_type)
        if plan.how == retry.SUBMIT:
            retry.submit(executor, job)
        state = JOB_RETRYING
    return RunResult(
        job_id,
        state,
        value if state == JOB_FINISHED else None,
        exc if state == JOB_FAILED else None,
        flusher.writes,
    )


def _body(job_type: JobType, job: Job, progress: Progress, attempt: int, deadline, timeout) -> object:
    if job_type.isolation == "process":
        from . import isolation

        return isolation.run(
            job_type,
            job,
            progress,
            attempt=attempt,
            deadline=deadline,
            timeout=timeout,
            grace=timeout_grace(),
            flush=flush_interval(),
            capture_logs=job_type.capture_logs,
        )
    if job_type.capture_logs:
        with capture(job._ferry_log):
            return job_type.run(job, progress)
    return job_type.run(job, progress)


def _error_code(exc: BaseException) -> str:
    if isinstance(exc, JobTimedOut):
        return ERROR_TIMEOUT
    if isinstance(exc, WorkerLost):
        return ERROR_WORKER_LOST
    return ERROR_EXCEPTION


def _retry_plan(job_type: JobType, job: Job, exc: BaseException | None):
    """(executor, Plan) if the policy gives the failed attempt a successor, else (None, None)."""
    try:
        if exc is None or not job_type.should_retry(job, exc):
            return None, None
        delay = max(0.0, float(job_type.retry_delay(job)))
    except Exception:
        logger.exception("task-ferry: the retry policy of job %s (%s) raised; the job fails.", job.pk, job.type)
        return None, None
    executor = get_executor()
    return executor, retry.plan(executor, delay, timezone.now())


def _record(
    job: Job,
    attempt: int,
    outcome: str,
    progress: Progress,
    result: object,
    exc: BaseException | None,
    code: str,
    plan: retry.Plan | None,
) -> tuple[str, bool]:
    """Write the outcome with a compare-and-set from ``started`` (this attempt); return
    the state that holds and whether this runner owns it (runs its hooks).

    If the CAS finds the attempt no longer started, someone else ended it first:
    that state wins. A cancel of this attempt is the runner's to finish (the
    job's last progress is kept on the row, the runner runs ``on_cancelled``);
    any other end (the reaper, a later attempt) is not."""
    label = progress._label or job.progress_state
    target, fields = _outcome_fields(
        outcome, timezone.now(), label, progress.percentage, result, exc, code, plan, attempt
    )
    if _write_outcome(job, attempt, target, fields, _attempt_row(job, attempt, outcome, code, exc)):
        job.state = target
        for name, value in fields.items():
            setattr(job, name, value)
        return target, True
    # Lost the race: keep the state that won, record how far the job got.
    actual, actual_attempt = Job._base_manager.filter(pk=job.pk).values_list("state", "attempts").first() or (None, 0)
    if actual == JOB_CANCELLED and actual_attempt == attempt:
        Job._base_manager.filter(pk=job.pk, state=JOB_CANCELLED, attempts=attempt).update(
            progress_percentage=progress.percentage, progress_state=label[:255]
        )
        job.progress_percentage, job.progress_state = progress.percentage, label
        job.state = JOB_CANCELLED
        return JOB_CANCELLED, True
    if actual_attempt != attempt:
        logger.warning(
            "task-ferry: attempt %s of job %s was given up on while it ran (the job is now at attempt %s, %r); "
            "its outcome is dropped.",
            attempt,
            job.pk,
            actual_attempt,
            actual,
        )
    else:
        logger.warning("task-ferry: job %s ended as %r by someone else while running; keeping that.", job.pk, actual)
    job.state = actual or job.state
    return job.state, False


def _outcome_fields(
    outcome: str,
    now,
    label: str,
    percentage: int,
    result: object,
    exc: BaseException | None,
    code: str,
    plan: retry.Plan | None,
    attempt: int,
) -> tuple[str, dict]:
    """The state an attempt's outcome writes (a planned retry's for a failure that is
    retried) and the job's fields it sets beside it."""
    fields: dict = {"finished_at": now, "updated_at": now, "progress_state": label[:255]}
    target = outcome
    if outcome == JOB_FINISHED:
        fields.update(progress_percentage=100, result=result)
    else:
        fields["progress_percentage"] = percentage
    if outcome == JOB_FAILED:
        message = error_text(exc)
        if plan is not None:
            target = plan.state
            fields.update(retry.fields(plan, attempt, message, code))
        else:
            fields.update(
                error=message,
                human_readable_error=f"An error occurred while running the job: {message}",
                error_code=code,
            )
    return target, fields


def prepare_process() -> None:
    """Build this process's statements for claiming jobs and recording their outcomes now
    (on PostgreSQL; elsewhere there are none to build), instead of in the first job run.

    A worker that forks a process per job (RQ's work horse) calls it once before it
    forks: every fork then inherits them, where it would otherwise build them again for
    each job, a few milliseconds each time. It makes no query and opens no connection."""
    alias = router.db_for_write(Job)
    if connections[alias].vendor != "postgresql":
        return
    for model in {Job, *(job_type.model_class for job_type in job_type_registry.all())}:
        _claim_statement(model, alias)
    now = timezone.now()
    shapes = [
        (JOB_FINISHED, None, None),
        (JOB_FINISHED, {}, None),
        (JOB_CANCELLED, None, None),
        (JOB_FAILED, None, RuntimeError("x")),
    ]
    for outcome, result, exc in shapes:
        target, fields = _outcome_fields(outcome, now, "", 0, result, exc, ERROR_EXCEPTION, None, 1)
        _outcome_statement(alias, {"state": target, **fields})


def _write_outcome(job: Job, attempt: int, target: str, fields: dict, attempt_row: JobAttempt) -> bool:
    """Compare-and-set the attempt's outcome (from ``started``, this attempt) and insert
    its ``JobAttempt`` row whether or not the CAS won (the first writer of an attempt's
    row wins: the reaper may have recorded it as lost already). Whether the CAS won.

    On PostgreSQL both are one statement, committed on its own: no transaction, no
    savepoint. Should that statement fail on its data (an integrity or data error),
    nothing of it was written, and the two writes are made apart, as on the other
    databases: the outcome first, then the attempt row in a savepoint, in one
    transaction, so a failure of the row cannot undo the outcome."""
    alias = router.db_for_write(Job)
    connection = connections[alias]
    if connection.vendor == "postgresql":
        try:
            with transaction.atomic(using=alias) if connection.in_atomic_block else nullcontext():
                return _write_outcome_pg(job.pk, attempt, {"state": target, **fields}, attempt_row, alias)
        except (IntegrityError, DataError) as exc:
            logger.warning(
                "task-ferry: recording attempt %s of job %s in one statement failed (%s); recording it in two.",
                attempt,
                job.pk,
                exc,
            )
    with transaction.atomic(using=alias):
        cas = Job._base_manager.using(alias).filter(pk=job.pk, state=JOB_STARTED, attempts=attempt)
        won = bool(cas.update(state=target, **fields))
        if not won and not Job._base_manager.using(alias).filter(pk=job.pk).exists():
            return False  # deleted meanwhile: no attempt to record (its foreign key would fail the commit)
        try:
            with transaction.atomic(using=alias):  # a savepoint: a failure here is contained
                JobAttempt.objects.using(alias).bulk_create([attempt_row], ignore_conflicts=True)
        except Exception:
            logger.exception("task-ferry: could not record attempt %s of job %s.", attempt, job.pk)
    return won


#: (alias, the outcome's field names, which of them are None) -> (SQL, the (name, field) given
#: as parameters, the attempt row's fields); built once per process and shape.
_outcome_statements: dict[tuple, tuple[str, list, list]] = {}


def _outcome_statement(alias: str, values: dict) -> tuple[str, list, list]:
    key = (alias, tuple((name, value is None) for name, value in values.items()))
    cached = _outcome_statements.get(key)
    if cached is not None:
        return cached
    qn = connections[alias].ops.quote_name
    table = qn(Job._meta.db_table)
    sets, given = [], []
    for name, value in values.items():
        field = Job._meta.get_field(name)
        if value is None:
            sets.append(f"{qn(field.column)} = NULL")  # SQL NULL, as the ORM writes None (not JSON null)
        else:
            sets.append(f"{qn(field.column)} = %s")
            given.append((name, field))
    pk, state, attempts = (qn(Job._meta.get_field(n).column) for n in ("id", "state", "attempts"))
    fields = [f for f in JobAttempt._meta.concrete_fields if not f.primary_key]
    # The attempt's row only for a job that exists (one deleted meanwhile has no attempts
    # to record), so the statement does not fail on the foreign key.
    sql = (
        f"WITH updated AS (UPDATE {table} SET {', '.join(sets)} "
        f"WHERE {pk} = %s AND {state} = %s AND {attempts} = %s RETURNING 1), "
        f"attempt AS (INSERT INTO {qn(JobAttempt._meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "
        f"SELECT {', '.join(['%s'] * len(fields))} WHERE EXISTS (SELECT 1 FROM {table} WHERE {pk} = %s) "
        f"ON CONFLICT DO NOTHING) "
        f"SELECT count(*) FROM updated"
    )
    _outcome_statements[key] = (sql, given, fields)
    return sql, given, fields


def _write_outcome_pg(job_id: int, attempt: int, values: dict, row: JobAttempt, alias: str) -> bool:
    connection = connections[alias]
    sql, given, fields = _outcome_statement(alias, values)
    params = [field.get_db_prep_save(values[name], connection) for name, field in given]
    params += [job_id, JOB_STARTED, attempt]
    params += [f.get_db_prep_save(getattr(row, f.attname), connection) for f in fields]
    params.append(job_id)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0] == 1


def error_text(exc: BaseException) -> str:
    """The message recorded for an exception: ``str(exc)``, or its class name when that is
    empty, storable in any database (PostgreSQL refuses NUL characters in text: an error
    carrying one would fail the outcome's write and leave the job ``started``)."""
    return _storable(str(exc) or type(exc).__name__)


def _storable(text: str) -> str:
    return text.replace("\x00", "\\x00") if "\x00" in text else text


def _attempt_row(
    job: Job, attempt: int, outcome: str, code: str, exc: BaseException | None, traceback_text: str | None = None
) -> JobAttempt:
    if code in (ERROR_TIMEOUT, ERROR_WORKER_LOST):
        outcome = code
    error = error_text(exc) if exc is not None else ""
    if traceback_text is None:
        traceback_text = getattr(exc, "_ferry_traceback", None) or (
            "".join(traceback.format_exception(exc)) if exc is not None and exc.__traceback__ is not None else ""
        )
    traceback_text = _storable(traceback_text)
    return JobAttempt(
        job_id=job.pk,
        number=attempt,
        started_at=job.started_at,
        ended_at=timezone.now(),
        outcome=outcome,
        error=error,
        traceback=traceback_text,
    )


def record_attempt(
    job: Job, attempt: int, outcome: str, code: str, exc: BaseException | None, traceback_text: str | None = None
) -> None:
    """Insert the ``JobAttempt`` row of an attempt unless it has one (the first writer wins)."""
    JobAttempt.objects.bulk_create(
        [_attempt_row(job, attempt, outcome, code, exc, traceback_text)], ignore_conflicts=True
    )
