"""Counts what one job run costs the database, in the process that runs it.

Every statement any Django connection of the process sends (``CursorWrapper.execute`` /
``executemany``, so a progress store's own connection counts too), every explicit
transaction ended (``BaseDatabaseWrapper._commit`` / ``_rollback``: a ``BEGIN`` and a
``COMMIT`` round trip on PostgreSQL, which the cursor does not see), and every connect.
An engine's hook calls :func:`install` once in the process that runs jobs, :func:`mark`
when a job starts and :func:`report` when it ended; :func:`report` adds the counts since
the mark to Redis, where the driver reads them (:func:`read`), whatever process, thread or
forked child ran the job.

With ``BENCH_PROFILE_DIR`` set, the same hooks also profile every job (cProfile, from mark to
report) and write ``worker-<pid>.pstats`` there every 50 jobs.
"""

from __future__ import annotations

import os

KEY = "bench:count"
FIELDS = ("statements", "transactions", "connects")
_counts = dict.fromkeys(FIELDS, 0)
_mark = dict(_counts)
_profile: dict = {}


def install() -> None:
    from django.db.backends import utils
    from django.db.backends.base.base import BaseDatabaseWrapper

    def patch(cls, name: str, field: str) -> None:
        original = getattr(cls, name)

        def counted(self, *args, **kwargs):
            _counts[field] += 1
            return original(self, *args, **kwargs)

        setattr(cls, name, counted)

    for name in ("execute", "executemany"):
        patch(utils.CursorWrapper, name, "statements")
    for name in ("_commit", "_rollback"):
        patch(BaseDatabaseWrapper, name, "transactions")
    patch(BaseDatabaseWrapper, "connect", "connects")


def mark() -> None:
    _mark.update(_counts)
    if os.environ.get("BENCH_PROFILE_DIR"):
        import cProfile

        profiler = _profile.setdefault(os.getpid(), cProfile.Profile())  # a forked child starts its own
        profiler.enable()


def _profiled() -> None:
    profiler = _profile.get(os.getpid())
    if profiler is None:
        return
    profiler.disable()
    _profile["jobs"] = _profile.get("jobs", 0) + 1
    if _profile["jobs"] % 50 == 1:
        profiler.dump_stats(os.path.join(os.environ["BENCH_PROFILE_DIR"], f"worker-{os.getpid()}.pstats"))


def report(redis_url: str) -> None:
    """Adds the counts since the last mark (and one job) to Redis, then marks."""
    import redis

    _profiled()
    with redis.Redis.from_url(redis_url) as client, client.pipeline(transaction=False) as pipe:
        for field in FIELDS:
            pipe.incrby(f"{KEY}:{field}", _counts[field] - _mark[field])
        pipe.incrby(f"{KEY}:jobs", 1)
        pipe.execute()
    mark()


def reset(client) -> None:
    client.delete(*(f"{KEY}:{f}" for f in (*FIELDS, "jobs")))


def read(client) -> dict:
    """Per job run, over the jobs reported since :func:`reset`."""
    jobs = int(client.get(f"{KEY}:jobs") or 0)
    out = {f"{field}_per_job": int(client.get(f"{KEY}:{field}") or 0) / jobs if jobs else None for field in FIELDS}
    return {**out, "jobs_counted": jobs}
