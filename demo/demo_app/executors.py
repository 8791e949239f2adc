"""A minimal out-of-process executor: each job runs in a fresh ``python manage.py``
process. It shows the whole executor contract in a few lines; production
projects install an engine plugin (task-ferry-celery, -rq, -dramatiq, ...)."""

import subprocess
import sys
from pathlib import Path

from task_ferry.executors.base import BaseExecutor
from task_ferry.protocols import Dispatch

MANAGE = Path(__file__).resolve().parent.parent / "manage.py"


class SubprocessExecutor(BaseExecutor):
    supports_defer_on_commit = True  # core calls submit() after the transaction commits
    out_of_process = True
    processes: list[subprocess.Popen] = []

    def submit(self, dispatch: Dispatch) -> str | None:
        code = f"from task_ferry.runner import run_job; run_job({dispatch.job_id}, {dispatch.job_type!r})"
        proc = subprocess.Popen([sys.executable, str(MANAGE), "shell", "-c", code])
        self.processes.append(proc)
        return None
