"""A bounded schemathesis run over every operation in the server's own /openapi.json
(issue #23, acceptance): valid and invalid requests generated from the schema, sent over
HTTP to a real server (the real engine on the tiny SD1.5 model, the bundled extensions),
and no answer may be a 5xx (but 501, server-restart's deliberate "not implemented"); the server must still answer health at the end.

Bounded and deterministic: a fixed number of examples per operation and mode,
``derandomize`` (the same cases every run), no example database. Generation requests
keep their fuzzed fields except the ones that decide how long a job runs (steps, size,
batch), which are clamped to a tiny job: the fuzz is about inputs, not about waiting.
A 5xx found here is a bug to fix, and its request becomes a case in test_bad_inputs.py.
"""

from __future__ import annotations

import json
import os

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.api.conftest import serving

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("EASEL_FUZZ_EXAMPLES", "5"))  # per operation and mode
# fields of a generation request that only make it run longer: clamped to a tiny job
CLAMP = {"steps": 2, "width": 64, "height": 64, "batch_size": 1, "n_iter": 1, "batch_count": 1}
NEVER = {"enable_hr": False, "hr_scale": 1, "hr_second_pass_steps": 1}


def tiny_job(body: object) -> object:
    """Clamp the run-time fields where they are valid numbers above the tiny job's."""
    if isinstance(body, dict):
        for key, bound in CLAMP.items():
            value = body.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > bound:
                body[key] = bound
        for key, value in NEVER.items():
            if key in body:
                body[key] = value
    return body


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory, tiny_models_dir):
    with serving(tmp_path_factory.mktemp("fuzz-data"), tiny_models_dir, safe_mode=False) as running:
        yield running


def fuzz(operation: schemathesis.APIOperation, mode: GenerationMode, url: str, failures: list[str]) -> None:
    """EXAMPLES requests for ``operation`` in ``mode``; each 5xx is added to ``failures``."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        if operation.method.upper() == "POST" and isinstance(case.body, dict):
            case.body = tiny_job(case.body)
        response = case.call(base_url=url, timeout=120)
        # 501 is a deliberate answer (server-restart: Easel cannot restart itself)
        if response.status_code >= 500 and response.status_code != 501:
            request = response.request
            body = request.body[:300] if isinstance(request.body, bytes) else request.body
            failures.append(
                f"{operation.label} ({mode.value}): {response.status_code} {response.text[:300]!r}"
                f" for {request.method} {request.url} {json.dumps(str(body))[:300]}"
            )

    check()


def test_no_generated_request_gets_a_5xx(fuzzed_server):
    url = fuzzed_server.url
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    failures: list[str] = []
    skipped: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40  # every route of the API, A1111's and the extensions'

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                fuzz(operation, mode, url, failures)
            except Unsatisfiable:  # nothing in this operation can be made invalid
                assert mode is GenerationMode.NEGATIVE, operation.label
                skipped.append(operation.label)
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/api/v1/health").json()["status"] == "ok"
    assert not failures, "\n".join(failures)
    assert len(skipped) < len(operations)  # most operations have inputs to break
