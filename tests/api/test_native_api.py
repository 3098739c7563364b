"""The native /api/v1 API against the real engine on a tiny model, over HTTP."""

from __future__ import annotations

import io
import json
import time

import httpx
from PIL import Image

from core.config import SHIPPED_MODELS_DIR
from tests.api.conftest import TINY_MODEL, TINY_VAE

SMALL = {"width": 64, "height": 64, "steps": 2, "model": TINY_MODEL}
# long enough to be caught running: the most steps the engine allows, a larger image
LONG = {"width": 192, "height": 192, "steps": 150, "model": TINY_MODEL}


def wait_for_status(client, job_id, statuses, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/v1/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {statuses}; last {job['status']}")


def wait_until_sampling(client, job_id, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = client.get("/sdapi/v1/progress").json()
        if state["current_task"] == job_id and state["state"]["sampling_step"] >= 1:
            return state
        time.sleep(0.05)
    raise AssertionError("the job never started sampling")


def read_sse(response):
    events, event = [], None
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line[len("event: ") :]
        elif line.startswith("data: "):
            events.append((event, json.loads(line[len("data: ") :])))
    return events


def test_job_lifecycle_with_live_events_and_images(easel):
    with easel.client() as client:
        response = client.post(
            "/api/v1/jobs", json={"prompt": "a red circle", "seed": 7, **SMALL, "steps": 3}
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        with client.stream("GET", f"/api/v1/jobs/{job_id}/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            events = read_sse(stream)
        kinds = [kind for kind, _ in events]
        assert kinds[0] == "status" and kinds[-1] == "result"
        progress = [data for kind, data in events if kind == "progress"]
        assert progress, kinds  # every step is reported (a fast job may be half over when we connect)
        assert progress[-1]["step"] == 3 and progress[-1]["total_steps"] == 3
        # the phases before sampling (loading, encoding) report step 0 at progress 0 (A1111 too)
        assert all(0 <= p["progress"] <= 1 for p in progress), progress
        assert all(p["progress"] > 0 for p in progress if p["phase"] == "sampling"), progress
        assert [p["progress"] for p in progress] == sorted(p["progress"] for p in progress)
        assert all("eta_s" in p for p in progress)
        result = events[-1][1]
        assert result["status"] == "done" and result["result"]["seeds"] == [7]

        job = client.get(f"/api/v1/jobs/{job_id}").json()
        assert job["status"] == "done" and job["attempts"] == 1 and job["progress"] == 1.0
        assert job["images"] == [f"/api/v1/jobs/{job_id}/images/0"]
        assert "Seed: 7" in job["result"]["infotexts"][0]
        image_response = client.get(job["images"][0])
        assert image_response.status_code == 200
        assert image_response.headers["content-type"] == "image/png"
        image = Image.open(io.BytesIO(image_response.content))
        assert image.size == (64, 64)
        assert image.info["parameters"] == job["result"]["infotexts"][0]
        assert client.get(f"/api/v1/jobs/{job_id}/images/1").status_code == 404
        # saved under the data folder's outputs, in A1111's layout
        written = list((easel.settings.outputs_dir).rglob("*.png"))
        assert any(p.name.endswith("-7.png") for p in written)


def test_preview_images_stream_while_sampling(easel):
    with easel.client() as client:
        job_id = client.post("/api/v1/jobs", json={"prompt": "previews", **SMALL, "steps": 6}).json()["id"]
        with client.stream("GET", f"/api/v1/jobs/{job_id}/events", params={"preview": "png"}) as stream:
            events = read_sse(stream)
        previews = [d["preview"] for kind, d in events if kind == "progress" and d["preview"]]
        assert previews, "no preview image in any progress event"
        Image.open(io.BytesIO(__import__("base64").b64decode(previews[-1]))).verify()


def test_cancel_a_queued_job_and_interrupt_the_running_one(easel):
    with easel.client() as client:
        running = client.post("/api/v1/jobs", json={"prompt": "long", **LONG}).json()["id"]
        queued = client.post("/api/v1/jobs", json={"prompt": "waits", **SMALL}).json()["id"]
        assert client.get(f"/api/v1/jobs/{queued}").json()["queue_position"] == 1
        wait_until_sampling(client, running)

        cancelled = client.delete(f"/api/v1/jobs/{queued}")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        assert client.delete(f"/api/v1/jobs/{queued}").status_code == 409  # already finished

        asked = time.monotonic()
        assert client.delete(f"/api/v1/jobs/{running}").status_code == 200
        job = wait_for_status(client, running, {"interrupted", "done", "failed"}, timeout=30)
        print(f"\ninterrupt took effect after {time.monotonic() - asked:.2f} s")
        assert job["status"] == "interrupted", job
        assert job["progress"] < 1.0
        assert client.get(f"/api/v1/jobs/{queued}").json()["status"] == "cancelled"  # never ran

        # retry the cancelled job: it runs now, attempts counted
        retried = client.post(f"/api/v1/jobs/{queued}/retry")
        assert retried.status_code == 200 and retried.json()["status"] == "queued"
        job = wait_for_status(client, queued, {"done", "failed", "interrupted"})
        assert job["status"] == "done" and job["attempts"] == 1
        assert client.post(f"/api/v1/jobs/{queued}/retry").status_code == 409  # done: nothing to retry

        listing = client.get("/api/v1/jobs", params={"status": ["interrupted"]}).json()
        assert running in [j["id"] for j in listing["jobs"]]


def test_sdapi_interrupt_and_progress_while_running(easel):
    with easel.client() as client:
        job_id = client.post("/api/v1/jobs", json={"prompt": "watch me", **LONG}).json()["id"]
        state = wait_until_sampling(client, job_id)
        assert 0 < state["progress"] < 1
        assert state["state"]["sampling_steps"] == 150
        assert state["state"]["job_count"] >= 1
        assert state["textinfo"].startswith("Sampling step ")  # A1111: the phase, then k/n
        assert client.post("/sdapi/v1/interrupt").json() == {"interrupted": True}
        job = wait_for_status(client, job_id, {"interrupted", "done", "failed"}, timeout=30)
        assert job["status"] == "interrupted"
        idle = client.get("/sdapi/v1/progress").json()
        assert idle["current_task"] is None or idle["current_task"] != job_id


def test_sdapi_skip_drops_the_current_batch_only(easel):
    with easel.client() as client:
        body = {"prompt": "two batches", "width": 64, "height": 64, "steps": 150, "batch_count": 2, "seed": 3}
        job_id = client.post("/api/v1/jobs", json=body).json()["id"]
        wait_until_sampling(client, job_id)
        assert client.post("/sdapi/v1/skip").json() == {"skipped": True}
        job = wait_for_status(client, job_id, {"done", "failed", "interrupted"})
        assert job["status"] == "done", job
        assert len(job["images"]) == 1 and job["result"]["seeds"] == [4]  # batch 0 (seed 3) skipped


def test_priority_runs_first(easel):
    with easel.client() as client:
        blocker = client.post("/api/v1/jobs", json={"prompt": "blocker", **LONG}).json()["id"]
        low = client.post("/api/v1/jobs", json={"prompt": "low", **SMALL}).json()["id"]
        high = client.post("/api/v1/jobs", json={"prompt": "high", "priority": 10, **SMALL}).json()["id"]
        assert client.get(f"/api/v1/jobs/{high}").json()["queue_position"] == 1
        assert client.get(f"/api/v1/jobs/{low}").json()["queue_position"] == 2
        wait_until_sampling(client, blocker)
        client.delete(f"/api/v1/jobs/{blocker}")
        first = wait_for_status(client, high, {"done"})
        second = wait_for_status(client, low, {"done"})
        assert first["started_at"] < second["started_at"]


def test_catalog_endpoints(easel):
    with easel.client() as client:
        models = client.get("/api/v1/models").json()
        assert {m["name"] for m in models} >= {TINY_MODEL}
        assert all(m["family"] == "sd15" and len(m["hash"]) == 10 for m in models)
        recommended = {m["name"]: m["recommended"] for m in models}
        shipped = json.loads(
            (SHIPPED_MODELS_DIR / "Stable-diffusion" / "easel-demo" / "easel.json").read_text()
        )
        assert recommended["easel-demo"] == shipped["recommended"]  # CFG 4, late CFG 1.5 from 0.3
        assert recommended[TINY_MODEL] == {}
        samplers = client.get("/api/v1/samplers").json()
        assert samplers and all(s["name"] for s in samplers)
        by_name = {s["name"]: s for s in samplers}
        assert (
            by_name["DPM++ 2M"]["options"] == {"scheduler": "karras"}
            and by_name["DPM++ 2M"]["nearest"] is None
        )
        assert "nearest" in by_name["Restart"]["nearest"]  # an approximation says what runs
        extensions = client.get("/api/v1/extensions").json()
        assert any(e["name"] == "builtin.upscalers_builtin" and e["state"] == "loaded" for e in extensions)
        health = client.get("/api/v1/health").json()
        assert health["status"] == "ok"
        docs = client.get("/openapi.json").json()
        schema = docs["components"]["schemas"]["JobRequest"]["properties"]
        assert {
            "prompt",
            "steps",
            "sampler",
            "scheduler",
            "styles",
            "init_image",
            "priority",
            "late_cfg_scale",
        } <= set(schema)
        assert client.get("/docs").status_code == 200


def test_cors_only_for_the_origins_named(easel):
    from core.api.app import create_app
    from tests.api.conftest import LiveServer

    app = create_app(
        easel.host, easel.service, engine=easel.engine, cors_allow_origins=["https://ok.example"]
    )
    live = LiveServer(app).start()
    try:
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        }
        allowed = httpx.options(
            f"{live.url}/api/v1/jobs", headers={"Origin": "https://ok.example", **preflight}
        )
        assert allowed.headers.get("access-control-allow-origin") == "https://ok.example"
        refused = httpx.options(
            f"{live.url}/api/v1/jobs", headers={"Origin": "https://evil.example", **preflight}
        )
        assert "access-control-allow-origin" not in refused.headers
    finally:
        live.stop()


def test_native_vae_field_and_model_prediction(easel):
    with easel.client() as client:
        bad = client.post("/api/v1/jobs", json={"prompt": "x", **SMALL, "vae": "nope.safetensors"})
        assert bad.status_code == 422 and "vae" in bad.text and TINY_VAE in bad.text
        job_id = client.post(
            "/api/v1/jobs", json={"prompt": "x", "seed": 2, **SMALL, "vae": TINY_VAE}
        ).json()["id"]
        job = wait_for_status(client, job_id, {"done", "failed"})
        models = {m["name"]: m for m in client.get("/api/v1/models").json()}
    assert job["status"] == "done", job
    assert f"VAE: {TINY_VAE}" in job["result"]["infotexts"][0]
    assert models[TINY_MODEL]["prediction"] == "eps" and models[TINY_MODEL]["prediction_source"]
