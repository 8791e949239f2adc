"""The demo page in a real browser: headless Chromium (Debian's ``/usr/bin/chromium``, driven by
Playwright for Python; no browser is ever downloaded) against the real demo (its ``db_worker``,
its server). Start a job and watch the bar move, cancel it, start another and see it finish,
read the log, fail and retry; and the same page without ``EventSource`` (polling)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from conftest import run_demo

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(
        f"Debian's chromium is not installed at {CHROMIUM}; install it with `apt-get install -y chromium` "
        "(the browser test drives that binary and never downloads one).",
        allow_module_level=True,
    )

from playwright.sync_api import expect, sync_playwright  # noqa: E402

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STARTED = re.compile(r"Started job (\d+)\.")
TIMEOUT_MS = 60_000  # generous: the machine running this may be busy
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),  # a fresh user-data-dir
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
        )
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser_context):
    page = browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    page.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def start_job(page, *, seconds: float, regions: int = 3, fail_first: bool = False):
    """Fill the form, press Start, and return the new job's row and id."""
    page.get_by_label("Regions").fill(str(regions))
    page.get_by_label("Duration in seconds").fill(str(seconds))
    page.get_by_label("Fail on the first attempt").set_checked(fail_first)
    page.get_by_role("button", name="Start a report job").click()
    status = page.get_by_role("status")
    expect(status).to_have_text(STARTED)
    job_id = int(STARTED.fullmatch(status.inner_text()).group(1))
    return page.locator(f'li.job[data-job-id="{job_id}"]'), job_id


def values_seen(bar, *, count: int, timeout: float = 60) -> list[int]:
    """Read the bar's ``aria-valuenow`` until it has shown ``count`` distinct values strictly
    between 0 and 100; return them in the order seen."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while len(seen) < count:
        value = int(bar.get_attribute("aria-valuenow"))
        if 0 < value < 100 and value not in seen:
            seen.append(value)
        assert time.monotonic() < deadline, f"the bar showed only {seen} in {timeout} s"
        time.sleep(0.05)
    return seen


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    with run_demo(tmp_path_factory.mktemp("demo")) as demo:
        yield demo


def test_start_watch_cancel_then_finish_and_read_the_log(page, demo):
    page.goto(demo.url)
    expect(page.locator("#signed-in")).to_contain_text("demo")
    expect(page.locator("#transport")).to_have_attribute("data-mode", "sse")

    # A long job: watch the bar move, then cancel it.
    row, job_id = start_job(page, seconds=60, regions=4)
    bar = row.get_by_role("progressbar", name=f"Progress of job {job_id}")
    seen = values_seen(bar, count=3)
    assert seen == sorted(seen), f"progress went backwards: {seen}"
    row.get_by_role("button", name=f"Cancel job {job_id}").click()
    expect(row).to_have_attribute("data-state", "cancelled")
    expect(row.locator(".state")).to_have_text("cancelled")
    assert seen[-1] <= int(bar.get_attribute("aria-valuenow")) < 100
    expect(row.get_by_role("button", name=f"Cancel job {job_id}")).to_be_disabled()
    expect(row.get_by_role("button", name=f"Retry job {job_id}")).to_be_enabled()

    # Another one, short: it finishes at 100 %.
    row2, job2 = start_job(page, seconds=3, regions=2)
    bar2 = row2.get_by_role("progressbar", name=f"Progress of job {job2}")
    expect(row2).to_have_attribute("data-state", "finished")
    expect(bar2).to_have_attribute("aria-valuenow", "100")
    expect(row2.locator(".pct")).to_have_text("100%")
    expect(row2.get_by_role("button", name=f"Retry job {job2}")).to_be_disabled()

    # Its log: the lines the job wrote, a warning among them.
    toggle = row2.get_by_role("button", name=f"Show logs of job {job2}")
    toggle.click()
    logs = row2.locator(".log-lines")
    expect(logs.locator("li").first).to_contain_text("Attempt 1: a report over 2 region(s)")
    expect(logs.locator("li").last).to_contain_text("Report ready.")
    expect(logs.locator("li.level-warning")).to_contain_text("3 rows had no date")
    expect(row2.get_by_role("button", name=f"Hide logs of job {job2}")).to_have_attribute("aria-expanded", "true")

    # The cancelled job's log stops where it was cancelled.
    row.get_by_role("button", name=f"Show logs of job {job_id}").click()
    expect(row.locator(".log-lines li").first).to_contain_text("Attempt 1: a report over 4 region(s)")
    expect(row.locator(".logs-status")).to_contain_text("line")
    expect(row.locator(".log-lines")).not_to_contain_text("Report ready.")


def test_a_failed_job_shows_its_error_and_a_retry_finishes_it(page, demo):
    page.goto(demo.url)
    row, job_id = start_job(page, seconds=2, regions=1, fail_first=True)
    row.get_by_role("button", name=f"Show logs of job {job_id}").click()  # followed while it runs
    expect(row).to_have_attribute("data-state", "failed")
    expect(row.get_by_role("alert")).to_contain_text("The chart renderer crashed")
    expect(row.locator(".log-lines li.level-error")).to_contain_text("The chart renderer crashed.")

    row.get_by_role("button", name=f"Retry job {job_id}").click()
    expect(row).to_have_attribute("data-state", "finished")
    expect(row.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    expect(row.locator(".job-title")).to_contain_text("attempt 2")
    expect(row.get_by_role("alert")).to_be_hidden()
    # The log went on following the second attempt.
    expect(row.locator(".log-lines")).to_contain_text("Attempt 2: a report over 1 region(s)")
    expect(row.locator(".log-lines li").last).to_contain_text("Report ready.")


@pytest.mark.parametrize("why", ["no EventSource", "an event stream failed"])
def test_without_a_working_event_stream_the_page_polls(page, demo, why):
    streams: list[str] = []
    if why == "no EventSource":
        page.add_init_script("delete window.EventSource;")
        page.on("request", lambda request: "/events/" in request.url and streams.append(request.url))
    else:
        # A proxy that cannot stream: every event stream request fails.
        page.route("**/events/", lambda route: (streams.append(route.request.url), route.abort()))
    page.goto(demo.url)
    expect(page.locator("#transport")).to_have_attribute("data-mode", "poll" if why == "no EventSource" else "sse")

    row, job_id = start_job(page, seconds=8, regions=2)
    expect(page.locator("#transport")).to_have_attribute("data-mode", "poll")
    expect(page.locator("#transport")).to_contain_text(why)
    bar = row.get_by_role("progressbar", name=f"Progress of job {job_id}")
    values_seen(bar, count=2)
    expect(row).to_have_attribute("data-state", "finished")
    expect(bar).to_have_attribute("aria-valuenow", "100")
    assert (streams == []) if why == "no EventSource" else (len(streams) == 1), streams


def test_the_celery_engine_runs_the_same_page(tmp_path, page):
    with run_demo(tmp_path, "celery") as demo:
        page.goto(demo.url)
        expect(page.locator(".setup")).to_contain_text("Celery")
        row, job_id = start_job(page, seconds=4, regions=2)
        bar = row.get_by_role("progressbar", name=f"Progress of job {job_id}")
        values_seen(bar, count=2)
        expect(row).to_have_attribute("data-state", "finished")
        expect(bar).to_have_attribute("aria-valuenow", "100")
