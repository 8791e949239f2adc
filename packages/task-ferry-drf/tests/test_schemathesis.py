"""The OpenAPI schema (drf-spectacular) against the running API, with schemathesis.

Several hundred generated requests, authenticated as a user who has jobs in
every ended state (and with a colleague whose job ids are tried too): no
response is a 5xx, and every response matches the schema (status code, content
type, headers, body). Requests that break the schema (negative mode) must be
refused with a 4xx, never a 5xx.
"""

from __future__ import annotations

from base64 import b64encode

import pytest
import schemathesis
from conftest import PASSWORD, make_job
from django.core.wsgi import get_wsgi_application
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from task_ferry.models import Job

pytestmark = [pytest.mark.integration, pytest.mark.slow]

POSITIVE_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
NEGATIVE_CHECKS = [not_a_server_error, negative_data_rejection]
EXAMPLES = {"positive": 50, "negative": 25}


def _basic(user: str) -> dict[str, str]:
    return {"Authorization": "Basic " + b64encode(f"{user}:{PASSWORD}".encode()).decode()}


@pytest.fixture
def api(transactional_db, make_user, settings):
    """The schema, the WSGI application, and job ids worth trying."""
    # Streams of jobs that never end must not hold the run up.
    settings.TASK_FERRY_DRF = {**settings.TASK_FERRY_DRF, "SSE_MAX_DURATION": 0.3, "SSE_POLL_INTERVAL": 0.1}
    alice, bob = make_user("alice"), make_user("bob")
    make_user("operator", staff=True)
    ids = [make_job(alice, "step", state, steps=1).pk for state in ("finished", "failed", "cancelled", "pending")]
    for n in range(1, 8):  # lines for the logs endpoint to page through
        Job._base_manager.get(pk=ids[0]).log(f"line {n}", level=("info", "warning", "error")[n % 3])
    ids.append(make_job(alice, "export_table", "failed", table_id=3).pk)
    ids.append(make_job(bob, "step", "failed").pk)
    document = SchemaGenerator().get_schema(request=None, public=True)
    return schemathesis.openapi.from_dict(document), get_wsgi_application(), ids


def test_every_generated_request_gets_a_schema_conformant_non_5xx_answer(api):
    schema, app, job_ids = api
    counted = {"positive": 0, "negative": 0}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {
        "GET /api/jobs/",
        "POST /api/jobs/",
        "GET /api/jobs/{job_id}/",
        "POST /api/jobs/{job_id}/cancel/",
        "POST /api/jobs/{job_id}/retry/",
        "GET /api/jobs/{job_id}/events/",
        "GET /api/jobs/{job_id}/logs/",
        "GET /api/jobs/health/",
    }

    for operation in operations:
        headers = _basic("operator" if "health" in operation.label else "alice")
        for mode in ("positive", "negative"):
            generation = getattr(schemathesis.GenerationMode, mode.upper())
            strategies = [operation.as_strategy(generation_mode=generation)]
            if "{job_id}" in operation.path and mode == "positive":
                # Random ids are nearly always missing: also try real ones, the caller's and a colleague's.
                strategies += [operation.as_strategy(path_parameters={"job_id": i}) for i in job_ids]
            try:
                counted[mode] += _exercise(st.one_of(strategies), app, headers, mode)
            except Exception as exc:
                if "Unsatisfiable" in type(exc).__name__ and mode == "negative":
                    continue  # nothing in this operation can be made invalid (no parameters, say)
                raise

    print(f"schemathesis requests: {counted}")
    assert counted["positive"] >= 250 and counted["negative"] >= 50, counted


def _exercise(strategy, app, headers: dict, mode: str) -> int:
    """Run ``EXAMPLES[mode]`` generated cases of one operation; return how many requests were sent."""
    checks = POSITIVE_CHECKS if mode == "positive" else NEGATIVE_CHECKS
    sent = 0

    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case):
        nonlocal sent
        response = case.call(app=app, headers=headers)
        sent += 1
        case.validate_response(response, checks=checks, headers=headers)

    run()
    return sent
