"""What the failure tests count over a run, per executor; ``tests/conftest.py`` prints it
at the end of the run and writes it to ``tests/.results/failures.json`` (gitignored)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Counts:
    """One executor's jobs. ``lost``, ``stuck`` and ``duplicate_runs`` must all end at zero."""

    jobs: int = 0
    #: Jobs that never reached the end they should have (left pending or retrying, or gone).
    lost: int = 0
    #: Jobs still ``started`` after the recovery deadline.
    stuck: int = 0
    #: Body runs beyond one per attempt.
    duplicate_runs: int = 0


@dataclass
class ChaosTally:
    """What the failure tests counted over the whole run."""

    #: executor -> its counts.
    executors: dict[str, Counts] = field(default_factory=dict)
    #: (executor, seconds) from ``kill -9`` of a worker to the reaper ending or retrying its job.
    recoveries: list = field(default_factory=list)
    #: (executor and how, seconds) from a timed-out job's start to its body's process being gone.
    kills: list = field(default_factory=list)
    #: executor -> why its cases were skipped.
    skipped: dict = field(default_factory=dict)

    def counts(self, executor: str) -> Counts:
        return self.executors.setdefault(executor, Counts())

    @property
    def total(self) -> Counts:
        total = Counts()
        for counts in self.executors.values():
            for name, value in asdict(counts).items():
                setattr(total, name, getattr(total, name) + value)
        return total

    def as_dict(self) -> dict:
        return {
            "total": asdict(self.total),
            "executors": {name: asdict(counts) for name, counts in sorted(self.executors.items())},
            "kill_9_to_recovery_seconds": [[name, round(s, 3)] for name, s in self.recoveries],
            "timed_out_body_gone_after_seconds": [[name, round(s, 3)] for name, s in self.kills],
            "skipped": dict(sorted(self.skipped.items())),
        }


TALLY = ChaosTally()
