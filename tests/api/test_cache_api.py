"""Step caching over HTTP: the native field, A1111's override_settings keys, refusals that
name the field (a 4xx, nothing queued)."""

from __future__ import annotations

import json

from core.saving.infotext import parse_infotext
from tests.api.conftest import TINY_MODEL
from tests.api.test_native_api import wait_for_status

SMALL = {"prompt": "a red circle", "seed": 3, "width": 64, "height": 64, "steps": 6, "model": TINY_MODEL}


def test_native_job_with_deepcache_records_it(easel):
    with easel.client() as client:
        response = client.post(
            "/api/v1/jobs", json={**SMALL, "cache": {"method": "deepcache", "threshold": 2}}
        )
        assert response.status_code == 202, response.text
        job = wait_for_status(client, response.json()["id"], {"done", "failed"})
    assert job["status"] == "done", job["error"]
    assert job["request"]["cache"] == {"method": "deepcache", "threshold": 2}
    stats = job["result"]["parameters"]["cache"]
    assert stats["calls"] == 6 and stats["full_calls"] == 3
    assert parse_infotext(job["result"]["infotexts"][0])["Cache"] == "deepcache 2"


def test_native_refusals_name_the_field(easel):
    with easel.client() as client:
        before = client.get("/api/v1/jobs").json()["total"]
        unknown = client.post("/api/v1/jobs", json={**SMALL, "cache": {"method": "teacache"}})
        assert unknown.status_code == 422 and "cache" in unknown.text
        # a transformer method on a UNet model: refused by the engine at submit, with the reason
        wrong = client.post("/api/v1/jobs", json={**SMALL, "cache": {"method": "fbcache"}})
        assert 400 <= wrong.status_code < 500 and "deepcache" in wrong.text, wrong.text
        bad = client.post("/api/v1/jobs", json={**SMALL, "cache": {"method": "deepcache", "threshold": 1.5}})
        assert 400 <= bad.status_code < 500 and "cache.threshold" in bad.text, bad.text
        assert client.get("/api/v1/jobs").json()["total"] == before


def test_sdapi_override_settings_turn_the_cache_on(easel):
    body = {k: v for k, v in SMALL.items() if k != "model"}
    body["override_settings"] = {
        "sd_model_checkpoint": TINY_MODEL, "easel_cache_method": "deepcache", "easel_cache_threshold": 3,
    }  # fmt: skip
    with easel.client() as client:
        response = client.post("/sdapi/v1/txt2img", json=body, timeout=300)
        assert response.status_code == 200, response.text
        info = json.loads(response.json()["info"])
        assert parse_infotext(info["infotexts"][0])["Cache"] == "deepcache 3"
        body["override_settings"]["easel_cache_method"] = "warp-speed"
        refused = client.post("/sdapi/v1/txt2img", json=body)
        assert refused.status_code == 422 and "easel_cache_method" in refused.text
