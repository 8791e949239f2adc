"""RQ worker classes that count, in the process that runs each job (the forked horse, or
the worker itself for ``SimpleWorker``), what the job cost the database."""

from rq import SimpleWorker, Worker

from ferrybench import counting
from ferrybench.engines.rq import REDIS_URL


class _Counting:
    def work(self, *args, **kwargs):
        counting.install()  # before any fork: every horse inherits the counters
        return super().work(*args, **kwargs)

    def perform_job(self, *args, **kwargs):
        counting.mark()
        try:
            return super().perform_job(*args, **kwargs)
        finally:
            counting.report(REDIS_URL)


class CountingWorker(_Counting, Worker):
    pass


class CountingSimpleWorker(_Counting, SimpleWorker):
    pass
