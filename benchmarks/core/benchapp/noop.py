"""An executor that accepts every dispatch and runs nothing (task-ferry-core only).

``supports_defer_on_commit = True`` like a real queue engine, so ``create_and_start``
pays for the on-commit dispatch bookkeeping but no job body runs."""

from task_ferry.executors.base import BaseExecutor


class NoopExecutor(BaseExecutor):
    supports_defer_on_commit = True
    out_of_process = True

    def submit(self, dispatch) -> None:
        return None
