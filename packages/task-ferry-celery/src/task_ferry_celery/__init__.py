"""task-ferry-celery: the ``celery`` executor for task-ferry (see :mod:`task_ferry_celery.executor`)."""

__version__ = "1.0.0.dev0"
