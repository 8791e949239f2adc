"""Job states. Transitions are compare-and-set updates (see ``Job.objects.transition``)."""

JOB_PENDING = "pending"
JOB_STARTED = "started"
JOB_FINISHED = "finished"
JOB_FAILED = "failed"
JOB_CANCELLED = "cancelled"

JOB_STATES_ENDED = (JOB_FINISHED, JOB_FAILED, JOB_CANCELLED)
JOB_STATES_RUNNING = (JOB_STARTED,)
JOB_STATES_PENDING_OR_RUNNING = (JOB_PENDING, JOB_STARTED)
ALL_STATES = (JOB_PENDING, JOB_STARTED, JOB_FINISHED, JOB_FAILED, JOB_CANCELLED)

STATE_CHOICES = [(s, s.capitalize()) for s in ALL_STATES]
