from django.conf import settings

from task_ferry.testing.jobs import ConformanceJobType

#: A queue only this type uses: a worker learns it from the job type registry, not from --queues.
ROUTED_QUEUE = f"{settings.QUEUE_PREFIX}_routed"


class RoutedJobType(ConformanceJobType):
    """The kit's job on a queue of its own (``JobType.queue``)."""

    type = "ferry_dramatiq_routed"
    queue = ROUTED_QUEUE
