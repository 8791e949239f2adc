"""The Dramatiq broker and raw actor of the Dramatiq benchmark; ``BENCH_COUNT`` adds a
middleware that counts what each message cost the database (one thread per process)."""

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from ferrybench.engines.dramatiq import BROKER_URL, QUEUE, RAW_QUEUE

broker = RedisBroker(url=BROKER_URL)


@dramatiq.actor(broker=broker, queue_name=RAW_QUEUE, actor_name="bench_noop", max_retries=0)
def noop(i: int) -> None:
    return None


@dramatiq.actor(broker=broker, queue_name=QUEUE, actor_name="bench_floor", max_retries=0)
def floor(job_id: int) -> None:
    """The floor side's actor (:mod:`ferrybench.floor`); its worker has Django set up."""
    from ferrybench.floor import run

    run(job_id)


if os.environ.get("BENCH_COUNT"):
    from ferrybench import counting

    class Count(dramatiq.Middleware):
        def after_process_boot(self, broker) -> None:
            counting.install()

        def before_process_message(self, broker, message) -> None:
            counting.mark()

        def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
            counting.report(BROKER_URL)

    broker.add_middleware(Count())
