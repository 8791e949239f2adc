"""task-ferry-dramatiq: the ``dramatiq`` executor for task-ferry (see :mod:`task_ferry_dramatiq.executor`).

Modules: ``executor`` (``DramatiqExecutor``), ``actor`` (the actor ``task_ferry_run_job``),
``worker`` (the entry point of ``dramatiq`` worker processes)."""

__version__ = "1.0.0.dev0"
