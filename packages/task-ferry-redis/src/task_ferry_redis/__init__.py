"""task-ferry-redis: the ``redis`` progress store for task-ferry (see :mod:`task_ferry_redis.store`)."""

__version__ = "1.0.0.dev0"
