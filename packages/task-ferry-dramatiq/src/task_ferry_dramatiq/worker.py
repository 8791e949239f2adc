"""Entry point of ``dramatiq`` worker processes: sets Django up and declares the actor and its queues.

Run task-ferry's jobs alone::

    DJANGO_SETTINGS_MODULE=proj.settings dramatiq task_ferry_dramatiq.worker:broker --queues default reports

or in the workers of your own actors, after your broker module::

    DJANGO_SETTINGS_MODULE=proj.settings dramatiq proj.dramatiq proj.tasks task_ferry_dramatiq.worker

(``:broker`` hands Dramatiq the executor's broker, so it is needed when
``OPTIONS["BROKER"]`` names a broker that is not the global one.)

A Dramatiq worker consumes only queues declared on its broker, narrowed by
``--queues``. This module declares, before the worker starts:

* the actor ``task_ferry_run_job`` (bound to ``TASK_FERRY["DEFAULT_QUEUE"]``);
* the queue of every registered job type (``JobType.get_queue()``);
* every queue named with ``--queues``, so a queue jobs are sent to ad hoc
  (``create_and_start(..., queue="x")``) is consumed where it is listed.

So without ``--queues`` a worker consumes every queue task-ferry knows of,
and with it exactly the queues listed.
"""

from __future__ import annotations

from django.apps import apps

if not apps.ready:  # a dramatiq process; under an already set-up Django (tests) this is a no-op
    import django

    django.setup()

from dramatiq import Middleware


class DeclareListedQueues(Middleware):
    """Declares the queues of the worker's ``--queues`` on its broker before it starts consuming,
    so they are consumed even though no actor is bound to them."""

    def before_worker_boot(self, broker, worker) -> None:
        for queue in sorted(getattr(worker, "consumer_whitelist", None) or ()):
            broker.declare_queue(queue)


def prepare():
    """Declare the actor and the queues on the configured executor's broker; return the broker."""
    from task_ferry.conf import get_executor
    from task_ferry.registry import job_type_registry

    from .actor import declare_actor
    from .executor import DramatiqExecutor

    executor = get_executor()
    if not isinstance(executor, DramatiqExecutor):
        # The dramatiq CLI reports an ImportError as "Failed to import module" with this message.
        raise ImportError(
            f'TASK_FERRY["EXECUTOR"] is {type(executor).__name__}, not the dramatiq executor: this worker would '
            f"never receive a job."
        )
    broker = executor.broker
    declare_actor(broker)
    for job_type in job_type_registry.all():
        broker.declare_queue(job_type.get_queue())
    if not any(isinstance(m, DeclareListedQueues) for m in broker.middleware):
        broker.add_middleware(DeclareListedQueues())
    return broker


broker = prepare()
