"""One set of defaults for every front end (issue #24): the same prompt and seed with
everything else left at its default give the same pixels from `easel generate --local`,
the native API, /sdapi/v1/txt2img and the WebUI's Generate event; a setting changed
through /sdapi/v1/options (A1111's names) changes all four alike (issue #25)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.cli.main import main as cli_main
from tests.api.conftest import gradio_call
from tests.api.test_native_api import wait_for_status

PROMPT, SEED = "a red circle on a blue background", 11


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)


def webui_defaults(client, negative: str | None = None) -> list:
    """The Generate event's inputs as a fresh page has them: every component's value from
    the page's config, the prompt and seed typed in. ``negative``: what the negative prompt
    box shows after a page load (its value is re-read then, the config keeps the first)."""
    config = client.get("/config").json()
    values = {c["id"]: c.get("props", {}).get("value") for c in config["components"]}
    elem_ids = {c["id"]: c.get("props", {}).get("elem_id") for c in config["components"]}
    dependency = next(d for d in config["dependencies"] if d.get("api_name") == "txt2img_generate")
    data = []
    for component_id in dependency["inputs"]:
        value = values.get(component_id)
        elem_id = elem_ids.get(component_id)
        if elem_id == "txt2img_prompt":
            value = PROMPT
        elif elem_id == "txt2img_seed":
            value = SEED
        elif elem_id == "txt2img_neg_prompt" and negative is not None:
            value = negative
        data.append(value)
    return data


def job_image(client, job_id: str) -> tuple[np.ndarray, str]:
    job = wait_for_status(client, job_id, {"done", "failed"})
    assert job["status"] == "done", job
    return pixels(client.get(job["images"][0]).content), job["result"]["infotexts"][0]


def four_front_ends(easel, capsys) -> dict[str, tuple[np.ndarray, str]]:
    out: dict[str, tuple[np.ndarray, str]] = {}
    settings = easel.settings
    with easel.client() as client:
        # the CLI in its own process space here: its own host and engine on the same folders
        code = cli_main(["generate", PROMPT, "--seed", str(SEED), "--local", "--safe-mode",
                         "--data-dir", str(settings.data_dir), "--models-dir", str(settings.models_dir)])  # fmt: skip
        assert code == 0
        path = capsys.readouterr().out.strip().splitlines()[-1]
        from core.saving.writer import read_infotext

        out["cli"] = (pixels(Path(path).read_bytes()), read_infotext(path))

        job_id = client.post("/api/v1/jobs", json={"prompt": PROMPT, "seed": SEED}).json()["id"]
        out["native"] = job_image(client, job_id)

        body = client.post("/sdapi/v1/txt2img", json={"prompt": PROMPT, "seed": SEED}).json()
        info = json.loads(body["info"])
        out["sdapi"] = (pixels(base64.b64decode(body["images"][0])), info["infotexts"][0])

        negative = easel.host.get_setting("default_negative_prompt")
        result = gradio_call(client, "txt2img_generate", webui_defaults(client, negative))
        assert not isinstance(result, dict), result
        newest = client.get("/api/v1/jobs", params={"limit": 1}).json()["jobs"][0]["id"]
        out["webui"] = job_image(client, newest)
    return out


@pytest.mark.slow
def test_the_same_prompt_and_seed_give_the_same_image_everywhere(easel_webui, capsys):
    with easel_webui.client() as client:
        before = client.get("/sdapi/v1/options").json()
    first = four_front_ends(easel_webui, capsys)
    reference, infotext = first["native"]
    assert "Negative prompt" not in infotext  # the default: none, in every front end
    for name, (image, text) in first.items():
        assert np.array_equal(image, reference), f"{name} differs from the native API's image"
        assert text == infotext, name
    try:
        with easel_webui.client() as client:
            changed = {"default_negative_prompt": "red circle", "CLIP_stop_at_last_layers": 2}
            assert client.post("/sdapi/v1/options", json=changed).status_code == 200
            options = client.get("/sdapi/v1/options").json()
            assert {k: options[k] for k in changed} == changed
        second = four_front_ends(easel_webui, capsys)
        reference2, infotext2 = second["native"]
        assert "Negative prompt: red circle" in infotext2 and "Clip skip: 2" in infotext2
        assert not np.array_equal(reference2, reference), "the settings changed nothing"
        for name, (image, text) in second.items():
            assert np.array_equal(image, reference2), f"{name} ignores the settings"
            assert "Negative prompt: red circle" in text and "Clip skip: 2" in text, name
    finally:
        with easel_webui.client() as client:
            client.post(
                "/sdapi/v1/options",
                json={k: before[k] for k in ("default_negative_prompt", "CLIP_stop_at_last_layers")},
            )
