"""The Celery app of the Celery benchmark (``celery -A ferrybench.engines.celery_app:app``).

Under Django (the tracked sides) it autodiscovers the ferry task (0.1.1's
``task_ferry.tasks``; ours registers its own in ``AppConfig.ready``); the raw side has no
Django. ``BENCH_COUNT`` adds the statement counting around every task.
"""

import os

from celery import Celery, signals

from ferrybench.engines.celery import BROKER_URL

app = Celery("bench_celery", broker=BROKER_URL)
app.conf.broker_connection_retry_on_startup = True
if os.environ.get("DJANGO_SETTINGS_MODULE"):
    if os.environ.get("BENCH_CELERY_DB_REUSE_MAX"):
        # Celery's Django fix-up closes every connection before and after each task unless this is set.
        app.conf.CELERY_DB_REUSE_MAX = int(os.environ["BENCH_CELERY_DB_REUSE_MAX"])
    app.autodiscover_tasks()


@app.task(name="bench.noop", acks_late=True, ignore_result=True)
def noop(i: int) -> None:
    return None


@app.task(name="bench.floor", acks_late=True, ignore_result=True)
def floor(job_id: int) -> None:
    from ferrybench.floor import run

    run(job_id)


if os.environ.get("BENCH_COUNT"):
    from ferrybench import counting

    signals.worker_process_init.connect(lambda **kw: counting.install(), weak=False)
    signals.task_prerun.connect(lambda **kw: counting.mark(), weak=False)
    signals.task_postrun.connect(lambda **kw: counting.report(BROKER_URL), weak=False)
