"""``SubprocessExecutor``: each dispatch runs the runner in a new process, which
any process can kill.

The demo's executor (``demo/demo_app/executors.py``) plus ``kill``: every run is
``python -m task_ferry.testing.bootstrap -c "run_job(...)"`` (so it works on the
test database), started in a session of its own, with its pid written to
``PID_DIR/<task id>.<pid>``. ``kill(job_id, task_id)`` reads those files, so the
reaper, a process of its own, can stop a run the test process started: SIGTERM,
then SIGKILL ``KILL_GRACE`` seconds later if it is still alive, the escalation
djprocess and task-ferry-celery use.

OPTIONS: ``PID_DIR`` (required), ``KILL_GRACE`` (seconds, default 2).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from task_ferry.executors.base import BaseExecutor
from task_ferry.protocols import Dispatch

CODE = "import sys; from task_ferry.runner import run_job; run_job(int(sys.argv[1]), sys.argv[2] or None)"


class SubprocessExecutor(BaseExecutor):
    supports_defer_on_commit = True
    out_of_process = True
    supports_kill = True

    def __init__(self, options=None) -> None:
        super().__init__(options)
        unknown = set(self.options) - {"PID_DIR", "KILL_GRACE"}
        if unknown or "PID_DIR" not in self.options:
            raise ValueError(f"SubprocessExecutor takes PID_DIR (required) and KILL_GRACE; got {sorted(self.options)}")
        self.pid_dir = Path(self.options["PID_DIR"])
        self.kill_grace = float(self.options.get("KILL_GRACE", 2))
        #: Every process this instance started (tests wait for them).
        self.launched: list[subprocess.Popen] = []

    def submit(self, dispatch: Dispatch) -> str | None:
        from task_ferry.testing.subprocess import bootstrap_args, child_env

        self.pid_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.pid_dir / f"job-{dispatch.job_id}-{time.monotonic_ns()}.log", "w")  # noqa: SIM115
        with log:
            proc = subprocess.Popen(
                bootstrap_args("-c", CODE, str(dispatch.job_id), dispatch.job_type),
                env=child_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        (self.pid_dir / f"{dispatch.task_id}.{proc.pid}").write_text(str(proc.pid))
        proc.ferry_job_id = dispatch.job_id
        self.launched.append(proc)
        # Reaped by a thread, so finished runs do not linger as zombies of whoever dispatched them.
        threading.Thread(target=proc.wait, daemon=True).start()
        return None

    def kill(self, job_id: int, task_id: str) -> None:
        pids = [int(p.read_text()) for p in self.pid_dir.glob(f"{task_id}.*")]
        for pid in pids:
            _signal(pid, signal.SIGTERM)

        def escalate() -> None:
            time.sleep(self.kill_grace)
            for pid in pids:
                _signal(pid, signal.SIGKILL)

        threading.Thread(target=escalate, daemon=True).start()


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)
