"""The reaper's fourth part: an executor's optional ``recover(limit)`` is called on every
pass and what it dispatched again is reported (``ReapResult.recovered``, ``ferry reap``).
The executor here is a stand-in (the glue is what is tested); task-ferry-rq's tests run
the real one against a worker killed before its claim."""

from __future__ import annotations

import json
import logging
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings

from task_ferry.executors.base import BaseExecutor
from task_ferry.reaper import reap


class RecoveringExecutor(BaseExecutor):
    out_of_process = True
    supports_defer_on_commit = True
    calls: list[int] = []
    answer: list[int] | Exception = []

    def submit(self, dispatch):
        return None

    def recover(self, limit: int) -> list[int]:
        RecoveringExecutor.calls.append(limit)
        if isinstance(self.answer, Exception):
            raise self.answer
        return list(self.answer)


@pytest.fixture
def recovering():
    RecoveringExecutor.calls, RecoveringExecutor.answer = [], []
    with override_settings(TASK_FERRY={"EXECUTOR": f"{__name__}.RecoveringExecutor", "PROGRESS_STORE": "database"}):
        yield RecoveringExecutor


def test_each_pass_calls_recover_with_its_limit_and_reports_the_ids(db, recovering):
    recovering.answer = [7, 9]
    result = reap(limit=25)
    assert (recovering.calls, result.recovered, bool(result)) == ([25], [7, 9], True)


def test_a_failing_recover_is_logged_and_the_pass_stands(db, recovering, caplog):
    recovering.answer = ConnectionError("broker down")
    with caplog.at_level(logging.ERROR, logger="task_ferry.reaper"):
        result = reap()
    assert (result.recovered, bool(result)) == ([], False)
    assert "recover() failed" in caplog.text and "broker down" in caplog.text


def test_executors_without_recover_are_left_alone(db):
    assert not hasattr(BaseExecutor, "recover")
    assert reap().recovered == []


def test_ferry_reap_reports_recovered_jobs(db, recovering):
    recovering.answer = [3]
    out = StringIO()
    call_command("ferry", "reap", "--json", stdout=out)
    assert json.loads(out.getvalue())["recovered"] == [3]
    out = StringIO()
    call_command("ferry", "reap", stdout=out)
    assert out.getvalue().rstrip().endswith("1 lost delivery dispatched again.")
