"""``GET /<id>/logs/``: a job's log lines, paged by cursor (``after``) or page number.

Security (someone else's job, the type's ``view`` hook, staff, anonymous callers) is
covered with the other job endpoints in ``test_security.py``; costs in ``test_queries.py``.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import API, make_job
from django.utils.dateparse import parse_datetime

from task_ferry.models import Job

pytestmark = pytest.mark.django_db


def logs(client, job_id, **params):
    return client.get(f"{API}{job_id}/logs/", params)


def written(job: Job, count: int) -> Job:
    for n in range(1, count + 1):
        job.log(f"line {n}", level="warning" if n % 2 else "info")
    return job


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def test_the_page_has_exactly_the_documented_shape(alice, client_for):
    job = written(make_job(alice, "step", "finished"), 3)

    response = logs(client_for(alice), job.pk)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"results", "has_more", "next_after", "next"}
    assert body["has_more"] is False and body["next_after"] == 3 and body["next"] is None
    assert [set(line) for line in body["results"]] == [{"seq", "level", "message", "logger", "created_at"}] * 3
    assert [(line["seq"], line["level"], line["message"], line["logger"]) for line in body["results"]] == [
        (1, "warning", "line 1", ""),
        (2, "info", "line 2", ""),
        (3, "warning", "line 3", ""),
    ]
    first = body["results"][0]["created_at"]
    assert first.endswith("Z") and parse_datetime(first) is not None


def test_a_job_run_through_the_api_shows_its_own_and_its_captured_lines(alice, client_for):
    client = client_for(alice)
    created = client.post(API, {"type": "export_table", "values": {"table_id": 42}}, format="json")
    assert created.status_code == 201

    lines = logs(client, created.json()["id"]).json()["results"]

    assert [(line["seq"], line["level"], line["message"], line["logger"]) for line in lines] == [
        (1, "info", "Exporting table 42", ""),
        (2, "warning", "Table 42 has no index", "drfapp.export"),
    ]


def test_a_cursor_pages_through_every_line_by_following_next(alice, client_for):
    job = written(make_job(alice, "step", "started"), 5)
    client = client_for(alice)

    first = logs(client, job.pk, page_size=2).json()
    assert [line["seq"] for line in first["results"]] == [1, 2]
    assert first["has_more"] is True and first["next_after"] == 2
    assert query_of(first["next"]) == {"page_size": ["2"], "after": ["2"]}

    seen = [line["seq"] for line in first["results"]]
    url = first["next"]
    while url:
        page = client.get(url).json()
        seen += [line["seq"] for line in page["results"]]
        url = page["next"]
    assert seen == [1, 2, 3, 4, 5]
    assert page["has_more"] is False and page["next_after"] == 5


def test_a_live_reader_polls_with_next_after(alice, client_for):
    """What a watching page does: keep the last ``next_after`` and ask for what follows."""
    job = written(make_job(alice, "step", "started"), 2)
    client = client_for(alice)
    cursor = logs(client, job.pk).json()["next_after"]

    nothing_new = logs(client, job.pk, after=cursor).json()
    assert nothing_new == {"results": [], "has_more": False, "next_after": 2, "next": None}

    job.log("line 3")
    fresh = logs(client, job.pk, after=cursor).json()
    assert [line["message"] for line in fresh["results"]] == ["line 3"] and fresh["next_after"] == 3


def test_page_numbers_page_from_one_and_next_switches_to_the_cursor(alice, client_for):
    job = written(make_job(alice, "step", "finished"), 5)
    client = client_for(alice)

    second = logs(client, job.pk, page=2, page_size=2).json()

    assert [line["seq"] for line in second["results"]] == [3, 4]
    assert second["has_more"] is True and second["next_after"] == 4
    assert query_of(second["next"]) == {"page_size": ["2"], "after": ["4"]}  # page= dropped
    last = logs(client, job.pk, page=3, page_size=2).json()
    assert [line["seq"] for line in last["results"]] == [5] and last["has_more"] is False
    beyond = logs(client, job.pk, page=9, page_size=2).json()
    assert beyond == {"results": [], "has_more": False, "next_after": 0, "next": None}


def test_a_job_without_lines_has_an_empty_page(alice, client_for):
    job = make_job(alice, "plain", "pending")
    assert logs(client_for(alice), job.pk).json() == {"results": [], "has_more": False, "next_after": 0, "next": None}


def test_page_size_defaults_to_100_and_is_capped_by_max_page_size(alice, client_for, settings):
    job = written(make_job(alice, "step", "finished"), 105)
    client = client_for(alice)

    default = logs(client, job.pk).json()
    assert len(default["results"]) == 100 and default["has_more"] is True

    settings.TASK_FERRY_DRF = {**settings.TASK_FERRY_DRF, "MAX_PAGE_SIZE": 3}
    capped = logs(client, job.pk, page_size=50).json()
    assert [line["seq"] for line in capped["results"]] == [1, 2, 3] and capped["next_after"] == 3
    assert len(logs(client, job.pk).json()["results"]) == 3  # the default is capped too


@pytest.mark.parametrize(
    "params,named",
    [
        ({"after": 1, "page": 1}, "page"),
        ({"after": "-1"}, "after"),
        ({"after": "abc"}, "after"),
        ({"after": ""}, "after"),
        ({"after": "1.5"}, "after"),
        ({"after": str(2**63)}, "after"),
        ({"after": "9" * 400}, "after"),
        ({"page": "0"}, "page"),
        ({"page": "-3"}, "page"),
        ({"page": ""}, "page"),
        ({"page": str(2**31)}, "page"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "x"}, "page_size"),
        ({"page_size": ""}, "page_size"),
    ],
)
def test_bad_query_parameters_are_400_naming_the_parameter(alice, client_for, params, named):
    job = written(make_job(alice, "step", "finished"), 1)

    response = logs(client_for(alice), job.pk, **params)

    assert response.status_code == 400
    assert named in response.json()


@pytest.mark.parametrize(
    "params", [{"after": str(2**63 - 1)}, {"after": str(2**40)}, {"page": str(2**31 - 1), "page_size": "200"}]
)
def test_far_off_but_valid_positions_are_empty_pages_not_errors(alice, client_for, params):
    job = written(make_job(alice, "step", "finished"), 2)

    response = logs(client_for(alice), job.pk, **params)

    assert response.status_code == 200
    assert response.json()["results"] == [] and response.json()["has_more"] is False


def test_lines_of_other_jobs_never_show(alice, client_for):
    mine = written(make_job(alice, "step", "finished"), 2)
    written(make_job(alice, "step", "finished"), 4)

    body = logs(client_for(alice), mine.pk).json()

    assert [line["message"] for line in body["results"]] == ["line 1", "line 2"]
