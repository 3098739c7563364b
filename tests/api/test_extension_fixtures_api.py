"""The three fixture extensions (tests/fixture_extensions/: wildcards, step_stats,
blocklist) through the native API and /sdapi/v1 of a real server: per-image prompts and
seeds in the job result and in A1111's ``all_prompts``/``all_seeds``, a structured result
in ``extra_generation_params``, an extension route, and refusals that are 422s naming the
field (nothing queued when the refusal comes from transform_prompt)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from core.config import BUNDLED_EXTENSION_NAMES
from tests.api.conftest import TINY_MODEL, serving

# a server of its own (a model load and extension folders): ~20 s on 2 cores
pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parents[1] / "fixture_extensions"
SMALL = {"steps": 2, "width": 64, "height": 64}


def expand(prompt: str, seed: int) -> str:
    spec = importlib.util.spec_from_file_location(
        "wildcards_reference", FIXTURES / "wildcards" / "__init__.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.expand(prompt, seed)


@pytest.fixture(scope="module")
def fixture_server(tmp_path_factory, tiny_models_dir):
    with serving(
        tmp_path_factory.mktemp("fixture-data"),
        tiny_models_dir,
        safe_mode=False,
        extension_dirs=[FIXTURES],
        disabled_extensions=set(BUNDLED_EXTENSION_NAMES),
    ) as running:
        yield running


def test_native_api_per_image_prompts_results_and_route(fixture_server):
    with fixture_server.client() as client:
        body = {"prompt": "a __color__ __shape__", "seed": 100, "batch_size": 2, "model": TINY_MODEL, **SMALL}
        accepted = client.post("/api/v1/jobs", json=body)
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["id"]
        fixture_server.service.wait(job_id, timeout=120)
        job = client.get(f"/api/v1/jobs/{job_id}").json()
        assert job["status"] == "done", job["error"]
        result = job["result"]
        assert result["seeds"] == [100, 101]
        assert result["prompts"] == [expand("a __color__ __shape__", s) for s in (100, 101)]
        assert result["extra_params"]["Wildcard prompt"] == "a __color__ __shape__"
        stats = result["results"]["step_stats"]
        assert [len(batch) for batch in stats["batches"]] == [2]
        # the extension's own route: what generation_finished kept
        last = client.get("/step_stats/last").json()
        assert last["job_id"] == job_id and last["seeds"] == [100, 101] and last["steps"] == 2


def test_sdapi_all_prompts_all_seeds_and_extra_generation_params(fixture_server):
    with fixture_server.client() as client:
        answer = client.post(
            "/sdapi/v1/txt2img", json={"prompt": "a __color__ __shape__", "seed": 7, "n_iter": 2, **SMALL}
        )
        assert answer.status_code == 200, answer.text
        info = json.loads(answer.json()["info"])
        assert info["all_seeds"] == [7, 8]
        assert info["all_prompts"] == [expand("a __color__ __shape__", s) for s in (7, 8)]
        assert info["prompt"] == "a __color__ __shape__"
        stats = info["extra_generation_params"]["step_stats"]
        assert isinstance(stats, dict) and [len(b) for b in stats["batches"]] == [2, 2]
        assert info["extra_generation_params"]["Wildcard prompt"] == "a __color__ __shape__"
        # each infotext has its image's own prompt and seed
        for infotext, seed in zip(info["infotexts"], (7, 8), strict=True):
            assert f"Transformed prompt: {expand('a __color__ __shape__', seed)}" in infotext
            assert f"Seed: {seed}," in infotext


@pytest.fixture
def blocked(fixture_server):
    host = fixture_server.host
    host.set_setting("blocklist.words", "dog")
    host.set_setting("blocklist.models", TINY_MODEL)
    yield host
    host.set_setting("blocklist.words", "")
    host.set_setting("blocklist.models", "")


def test_transform_prompt_refusal_is_a_422_and_nothing_is_queued(fixture_server, blocked):
    with fixture_server.client() as client:
        before = fixture_server.service.queue.count(None)
        native = client.post("/api/v1/jobs", json={"prompt": "a dog", "model": TINY_MODEL, **SMALL})
        assert native.status_code == 422
        assert native.json()["detail"][0]["loc"] == ["body", "prompt"]
        assert "blocked word 'dog'" in native.json()["errors"]
        sdapi = client.post("/sdapi/v1/txt2img", json={"prompt": "a dog", **SMALL})
        assert sdapi.status_code == 422
        assert sdapi.json()["errors"] == "prompt: contains the blocked word 'dog'"
        assert fixture_server.service.queue.count(None) == before, "a refused request was queued"


def test_before_sample_refusal_fails_the_job_naming_the_field_and_sdapi_answers_422(fixture_server, blocked):
    with fixture_server.client() as client:
        accepted = client.post("/api/v1/jobs", json={"prompt": "a cat", "model": TINY_MODEL, **SMALL})
        assert accepted.status_code == 202  # the model is only known to be blocked once loaded
        record = fixture_server.service.wait(accepted.json()["id"], timeout=120)
        assert record.status == "failed"
        assert record.error == f"RequestError: model: {TINY_MODEL} is blocked by the blocklist.models setting"
        sdapi = client.post(
            "/sdapi/v1/txt2img",
            json={"prompt": "a cat", "override_settings": {"sd_model_checkpoint": TINY_MODEL}, **SMALL},
        )
        assert sdapi.status_code == 422, sdapi.text[:300]
        body = sdapi.json()
        assert body["detail"][0]["loc"] == ["body", "model"] and body["job_id"]
        assert body["errors"].startswith("model: ")
