"""task-ferry-rq: the ``rq`` executor for task-ferry (see :mod:`task_ferry_rq.executor`)."""

__version__ = "1.0.0.dev0"
