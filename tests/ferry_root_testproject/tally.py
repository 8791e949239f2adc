"""What the failure tests count over a run; ``tests/conftest.py`` prints it at the end."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ChaosTally:
    """What the failure tests counted over the whole run. ``lost``, ``stuck`` and
    ``duplicate_runs`` must all end at zero."""

    jobs: int = 0
    #: Jobs that never reached the end they should have (left pending or retrying, or gone).
    lost: int = 0
    #: Jobs still ``started`` after the recovery deadline.
    stuck: int = 0
    #: Body runs beyond one per attempt.
    duplicate_runs: int = 0
    #: (executor, seconds) from ``kill -9`` of a worker to the reaper ending or retrying its job.
    recoveries: list = field(default_factory=list)
    #: (executor, seconds) from a timed-out job's start to its body's process being gone.
    kills: list = field(default_factory=list)
    #: executor -> why its cases were skipped.
    skipped: dict = field(default_factory=dict)


TALLY = ChaosTally()
