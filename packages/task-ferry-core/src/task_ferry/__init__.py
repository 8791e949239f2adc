"""task-ferry core: tracked background jobs for Django."""

__version__ = "1.0.0.dev0"

#: Version of the executor / progress-store plugin protocols. A plugin declares
#: the protocol version it was built for (``protocol_version`` class attribute);
#: a plugin built for another major version is reported by a system check
#: (``task_ferry.E010``) instead of failing at run time.
PROTOCOL_VERSION = 1
