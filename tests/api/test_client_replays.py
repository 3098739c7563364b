"""Real third-party A1111 clients, replayed call by call against a real `easel serve`
process. Each sequence was read from the client's public source (cited per test); every
response field the client reads is checked the way the client uses it.

Not replayed: AIYA's POST /login and GET /config (Gradio's own routes, read for LoRA and
hires-upscaler choices inside a try/except); the server here runs with --no-ui.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.api.conftest import SECOND_MODEL, TINY_MODEL, free_port, start_server_process, wait_healthy

pytestmark = pytest.mark.slow  # a server process of its own (~20 s to start)


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_models_dir: Path):
    data_dir = tmp_path_factory.mktemp("replay-data")
    (data_dir / "styles.csv").write_text(
        'name,prompt,negative_prompt\nposter,"{prompt}, poster art","blurry"\n', encoding="utf-8"
    )
    port = free_port()
    log = data_dir / "server.log"
    process = start_server_process(data_dir, tiny_models_dir, port, log)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
    try:
        wait_healthy(client, process, log)
        yield client, log
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=30)


def image_of(data: str) -> Image.Image:
    """Clients decode ``images`` as plain base64 (no data-URL prefix)."""
    image = Image.open(io.BytesIO(base64.b64decode(data)))
    image.load()
    return image


def test_open_webui(served):
    """open-webui/open-webui, backend/open_webui/routers/images.py (automatic1111
    engine): verify_url, get_models, get_image_model, set_image_model, image_generations."""
    client, _ = served
    assert client.get("/sdapi/v1/options").status_code == 200  # verify_url: raise_for_status
    models = client.get("/sdapi/v1/sd-models").json()
    listed = [{"id": m["title"], "name": m["model_name"]} for m in models]  # get_models
    assert {m["name"] for m in listed} >= {TINY_MODEL, SECOND_MODEL}
    current = client.get("/sdapi/v1/options").json()["sd_model_checkpoint"]  # get_image_model
    assert current in {m["id"] for m in listed}
    # set_image_model: GET the options, change the checkpoint, POST them all back
    target = next(m["id"] for m in listed if m["name"] == SECOND_MODEL)
    options = client.get("/sdapi/v1/options").json()
    options["sd_model_checkpoint"] = target
    client.post("/sdapi/v1/options", json=options).raise_for_status()
    assert client.get("/sdapi/v1/options").json()["sd_model_checkpoint"] == target
    # image_generations: prompt, batch_size, width, height, steps, negative_prompt, plus the
    # admin's AUTOMATIC1111_PARAMS merged in (a sampler and schedule type, as its docs show)
    data = {"prompt": "a red circle", "batch_size": 2, "width": 64, "height": 64, "steps": 2,
            "negative_prompt": "blurry", "sampler_name": "DPM++ 2M", "scheduler": "Karras", "cfg_scale": 5}  # fmt: skip
    res = client.post("/sdapi/v1/txt2img", json=data).json()  # r.json(), no status check
    assert len(res["images"]) == 2 and all(image_of(i).size == (64, 64) for i in res["images"])
    info = json.loads(res["info"])  # stored as the file's metadata
    assert info["sd_model_name"] == SECOND_MODEL and "Schedule type: Karras" in info["infotexts"][0]
    options["sd_model_checkpoint"] = current
    client.post("/sdapi/v1/options", json=options).raise_for_status()


def test_sillytavern(served):
    """SillyTavern/SillyTavern, src/endpoints/stable-diffusion.js (the server side of its
    image extension: /ping, /upscalers, /vaes, /samplers, /schedulers, /models,
    /get-model, /set-model, /generate) with the txt2img body its stable-diffusion
    extension builds (public/scripts/extensions/stable-diffusion/index.js)."""
    client, _ = served
    assert client.get("/sdapi/v1/options").is_success  # ping
    upscalers = [x["name"] for x in client.get("/sdapi/v1/upscalers").json()]
    latent = [x["name"] for x in client.get("/sdapi/v1/latent-upscale-modes").json()]
    upscalers[1:1] = latent  # "0 = None, then Latent Upscalers, then Upscalers"
    assert upscalers[0] == "None" and upscalers[1] == "Latent"
    # vaes: /sd-vae or Forge's /sd-modules, whichever answers an array
    vaes = [client.get("/sdapi/v1/sd-vae"), client.get("/sdapi/v1/sd-modules")]
    data = next(r.json() for r in vaes if r.is_success)
    assert isinstance(data, list) and [x["model_name"] for x in data] == ["tiny-vae.safetensors"]
    samplers = [x["name"] for x in client.get("/sdapi/v1/samplers").json()]
    schedulers = [x["name"] for x in client.get("/sdapi/v1/schedulers").json()]  # ids: "karras"
    assert "DPM++ 2M" in samplers and "karras" in schedulers
    models = [{"value": x["title"], "text": x["title"]} for x in client.get("/sdapi/v1/sd-models").json()]
    model = client.get("/sdapi/v1/options").json()["sd_model_checkpoint"]  # get-model
    assert model in [m["value"] for m in models]
    # set-model: POST the checkpoint, then poll /progress until idle
    assert client.post("/sdapi/v1/options", json={"sd_model_checkpoint": model}).is_success
    progress = client.get("/sdapi/v1/progress").json()
    assert progress["progress"] == 0.0 and progress["state"]["job_count"] == 0
    # generate: reads the options to tell Forge ("forge_preset") from A1111
    assert "forge_preset" not in client.get("/sdapi/v1/options").json()
    body = {
        "url": str(client.base_url), "auth": "",  # getSDRequestBody(), passed through
        "prompt": "a red circle", "negative_prompt": "blurry", "sampler_name": "DPM++ 2M",
        "scheduler": "karras", "steps": 2, "cfg_scale": 7, "width": 64, "height": 64,
        "restore_faces": False, "enable_hr": False, "hr_upscaler": "Latent", "hr_scale": 2.0,
        "hr_additional_modules": [], "denoising_strength": 0.7, "hr_second_pass_steps": 0,
        "override_settings": {"CLIP_stop_at_last_layers": 1}, "override_settings_restore_afterwards": True,
        "clip_skip": 1, "save_images": True, "send_images": True, "do_not_save_grid": False,
        "do_not_save_samples": False,
    }  # fmt: skip
    result = client.post("/sdapi/v1/txt2img", json=body)
    assert result.is_success, result.text[:500]  # "if (!result.ok) throw"
    assert image_of(result.json()["images"][0]).size == (64, 64)  # the extension shows images[0]


def test_aiya_discord_bot(served):
    """Kilvoctu/aiyabot: start-up in core/settings.py (check_webui_running,
    populate_global_vars), then a drawing as core/stablecog.py's dream() sends it."""
    client, _ = served
    flags = client.get("/sdapi/v1/cmd-flags")
    assert flags.status_code not in (401, 404)  # 401: --api-auth; 404: no --api
    assert flags.json()["gradio_auth"] in (None, "")  # read to decide on a Gradio login
    sampler_names = [s["name"] for s in client.get("/sdapi/v1/samplers").json()]
    style_names = {"None": ""}
    for s2 in client.get("/sdapi/v1/prompt-styles").json():
        style_names[s2["name"]] = s2["prompt"], s2["negative_prompt"]
    facefix = [s["name"] for s in client.get("/sdapi/v1/face-restorers").json()]
    embeddings = client.get("/sdapi/v1/embeddings").json()
    for group in ("loaded", "skipped"):
        for _name, shape in embeddings[group].items():
            assert shape["shape"] in (768, 1024)
    hypernets = [s["name"] for s in client.get("/sdapi/v1/hypernetworks").json()]
    upscalers = [s["name"] for s in client.get("/sdapi/v1/upscalers").json()]
    models = client.get("/sdapi/v1/sd-models").json()
    for model in models:  # matched against its models.csv by file name or model_name
        assert {"filename", "model_name", "title", "hash"} <= set(model)
    assert "Euler a" in sampler_names and "poster" in style_names and facefix == [] and hypernets == []
    assert "None" in upscalers
    # dream(): set the model, then txt2img with sampler_index, a style and hires fix
    title = next(m["title"] for m in models if m["model_name"] == TINY_MODEL)
    client.post("/sdapi/v1/options", json={"sd_model_checkpoint": title})
    steps = 3
    payload = {
        "prompt": "a red circle", "negative_prompt": "", "steps": steps, "width": 64, "height": 64,
        "cfg_scale": 7.0, "sampler_index": "Euler a", "seed": 1234, "seed_resize_from_h": 0,
        "seed_resize_from_w": 0, "denoising_strength": None, "n_iter": 1, "batch_size": 1,
        "styles": ["poster"],
        # high-res fix: hr_second_pass_steps is int(steps) / 2, a float (1.5)
        "enable_hr": True, "hr_upscaler": "Latent", "hr_scale": 1, "hr_second_pass_steps": int(steps) / 2,
        "override_settings": {"CLIP_stop_at_last_layers": 1},
    }  # fmt: skip
    response_data = client.post("/sdapi/v1/txt2img", json=payload).json()
    images = [image_of(b.split(",", 1)[0]) for b in response_data["images"]]
    assert len(images) == 1
    # save_metadata: png-info with a data URL, its "info" written into the PNG
    png = client.post(
        "/sdapi/v1/png-info", json={"image": "data:image/png;base64," + response_data["images"][0]}
    )
    info = png.json().get("info")
    assert info.startswith("a red circle, poster art") and "Hires steps: 1" in info
    # a drawing with no style chosen sends ["None"], which A1111 skips
    payload.update(styles=["None"], enable_hr=False)
    assert client.post("/sdapi/v1/txt2img", json=payload).status_code == 200


def test_talemate(served):
    """vegu-ai/talemate, src/talemate/agents/visual/backends/automatic1111.py:
    test_connection (GET /samplers), generate (its payload, images[0]), cancel_request."""
    client, _ = served
    assert client.get("/sdapi/v1/samplers", timeout=2).status_code == 200
    payload = {"prompt": "a red circle", "negative_prompt": "", "steps": 2, "width": 64, "height": 64,
               "cfg_scale": 7, "sampler_name": "DPM++ 2M SDE Heun", "scheduler": "Align Your Steps"}  # fmt: skip
    response = client.post("/sdapi/v1/txt2img", json=payload)
    response.raise_for_status()
    assert image_of(response.json()["images"][0]).size == (64, 64)
    # its SAMPLING_SCHEDULES list has a typo'd value A1111 does not know either
    typo = client.post("/sdapi/v1/txt2img", json={**payload, "scheduler": "polyPolyexponentialexponential"})
    assert typo.status_code == 422 and "scheduler" in typo.json()["errors"]
    client.post("/sdapi/v1/interrupt").raise_for_status()  # cancel_request


def test_webuiapi_library(served):
    """mix1009/sdwebuiapi (webuiapi, a test dependency), run unmodified: its start-up
    helpers, txt2img with a schedule type and a style, and its interrogate call."""
    import webuiapi

    client, _ = served
    base = f"http://{client.base_url.host}:{client.base_url.port}/sdapi/v1"
    api = webuiapi.WebUIApi(baseurl=base, sampler="DPM++ 2M", steps=2)
    assert "DPM++ 2M" in api.util_get_sampler_names() and "karras" in api.util_get_scheduler_names()
    assert TINY_MODEL in " ".join(api.util_get_model_names())
    api.util_wait_for_ready(check_interval=0.1)
    assert [s["name"] for s in api.get_prompt_styles()] == ["poster"]
    result = api.txt2img(
        prompt="a cat", width=64, height=64, scheduler="Exponential", styles=["poster"], seed=3
    )
    assert result.image.size == (64, 64)
    assert (
        result.info["prompt"] == "a cat, poster art"
        and "Schedule type: Exponential" in result.info["infotexts"][0]
    )
    with pytest.raises(RuntimeError) as refused:  # 4xx with a reason, not a 404
        api.interrogate(Image.new("RGB", (16, 16)))
    assert refused.value.args[0] == 422 and "interrogator" in refused.value.args[1]
