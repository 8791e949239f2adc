"""``manage.py demo`` (what ``./dev demo`` runs): it serves the page and the API, its worker
runs jobs, and Ctrl+C stops everything it started, a busy worker included."""

from __future__ import annotations

import os
import signal
import socket
from urllib.parse import urlsplit

import pytest
from conftest import descendants, run_demo, still_running, wait_for

ENDED = {"finished", "failed", "cancelled"}


def _port_closed(url: str) -> bool:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=1).close()
    except OSError:
        return True
    return False


@pytest.mark.parametrize(
    ("engine", "to_group"),
    [
        pytest.param("django-tasks", True, id="django-tasks-ctrl-c"),
        pytest.param("django-tasks", False, id="django-tasks-sigint-to-the-demo-only"),
        pytest.param("celery", True, id="celery-ctrl-c"),
    ],
)
def test_ctrl_c_stops_the_server_and_the_worker_in_the_middle_of_a_job(tmp_path, engine, to_group):
    with run_demo(tmp_path, engine) as demo:
        api = demo.client()
        job = api.start(regions=2, seconds=60)
        # Busy worker: the stop has to deal with a running job, not just an idle loop.
        wait_for(lambda: api.job(job["id"])["progress_percentage"] > 0, 60, "the job to make progress")
        # The worker and (Celery) its pool processes, all of which must end with the demo.
        minimum = 3 if engine == "celery" else 1
        processes = wait_for(
            lambda: (found := descendants(demo.proc.pid)) and len(found) >= minimum and found,
            30,
            f"{minimum} worker process(es)",
        )
        if to_group:
            os.killpg(demo.proc.pid, signal.SIGINT)  # what a terminal does on Ctrl+C
        else:
            demo.proc.send_signal(signal.SIGINT)
        assert demo.proc.wait(timeout=60) == 0, demo.output()
        assert still_running(processes) == [], f"left running: {still_running(processes)}\n{demo.output()}"
        assert _port_closed(demo.url)
        assert "Stopped." in demo.output()


def test_a_worker_that_dies_stops_the_demo(tmp_path):
    with run_demo(tmp_path) as demo:
        worker = next(iter(wait_for(lambda: descendants(demo.proc.pid), 30, "the worker")))
        os.kill(worker, signal.SIGKILL)
        assert demo.proc.wait(timeout=60) != 0
        assert "The worker exited on its own" in demo.output()
        assert _port_closed(demo.url)


def test_jobs_run_and_a_job_left_running_by_a_hard_stop_is_reaped_on_the_next_start(tmp_path):
    with run_demo(tmp_path) as demo:
        api = demo.client()
        # The page's session login keeps the API's CSRF check: a POST without the token is refused.
        token, api.csrf = api.csrf, "forged"
        status, body = api.call("POST", "/api/jobs/", {"type": "report", "values": {}})
        assert status == 403 and "CSRF" in body["detail"], body
        api.csrf = token
        done = api.start(regions=1, seconds=1)
        wait_for(lambda: api.job(done["id"])["state"] in ENDED, 60, "a short job to end", interval=0.25)
        assert api.job(done["id"])["state"] == "finished"
        assert api.job(done["id"])["result"] == {"regions": 1, "pages": 3}

        lost = api.start(regions=1, seconds=60)
        wait_for(lambda: api.job(lost["id"])["state"] == "started", 60, "the long job to start")
        # No time to clean up: the demo and its worker are killed outright (a power cut, OOM).
        worker = descendants(demo.proc.pid)
        for pid in [demo.proc.pid, *worker]:
            os.kill(pid, signal.SIGKILL)
        demo.proc.wait()
        wait_for(lambda: not still_running(worker), 30, "the worker to die")

    with run_demo(tmp_path) as demo:
        api = demo.client()
        job = wait_for(
            lambda: (job := api.job(lost["id"]))["state"] in ENDED and job, 90, "the reaper to end the lost job", 0.5
        )
        assert job["state"] == "failed"
        assert "worker lost" in job["error"]
