"""Job states. Transitions are compare-and-set updates (see ``Job.objects.transition``).

``retrying`` is a job waiting for its next attempt after a failed one (its
``run_after`` says when); it is live like ``pending``: it counts towards
``max_count`` and can be cancelled.
"""

JOB_PENDING = "pending"
JOB_STARTED = "started"
JOB_FINISHED = "finished"
JOB_FAILED = "failed"
JOB_CANCELLED = "cancelled"
JOB_RETRYING = "retrying"

JOB_STATES_ENDED = (JOB_FINISHED, JOB_FAILED, JOB_CANCELLED)
JOB_STATES_RUNNING = (JOB_STARTED,)
#: Not started yet: a worker may claim the job (``retrying`` only once its ``run_after`` is due).
JOB_STATES_WAITING = (JOB_PENDING, JOB_RETRYING)
JOB_STATES_PENDING_OR_RUNNING = (JOB_PENDING, JOB_RETRYING, JOB_STARTED)
# ``retrying`` last: listings and scripts that print the 0.1.1 states in order keep that order.
ALL_STATES = (JOB_PENDING, JOB_STARTED, JOB_FINISHED, JOB_FAILED, JOB_CANCELLED, JOB_RETRYING)

STATE_CHOICES = [(s, s.capitalize()) for s in ALL_STATES]

#: ``Job.error_code`` values: why a ``failed`` (or ``retrying``) job's last attempt ended.
ERROR_EXCEPTION = "exception"
ERROR_TIMEOUT = "timeout"
ERROR_WORKER_LOST = "worker_lost"
ERROR_DISPATCH_FAILED = "dispatch_failed"
ERROR_CODES = (ERROR_EXCEPTION, ERROR_TIMEOUT, ERROR_WORKER_LOST, ERROR_DISPATCH_FAILED)
