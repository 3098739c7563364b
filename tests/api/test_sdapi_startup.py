"""The /sdapi/v1 endpoints A1111 clients call at start-up, A1111's pydantic-1 coercion
(on /sdapi/v1 only) and prompt styles, against a real server (tests/api/conftest.py).
Shapes are A1111 1.10's (modules/api/api.py, models.py)."""

from __future__ import annotations

import json

import pytest

from tests.api.conftest import TINY_MODEL, b64_png

STYLES_CSV = (
    'name,prompt,negative_prompt\nframed,"a photo of {prompt}, framed","blurry"\nbright,bright colours,\n'
)


@pytest.fixture
def styles_file(easel):
    path = easel.settings.data_dir / "styles.csv"
    # A1111 writes the file with a BOM: read it as A1111 does
    path.write_text(STYLES_CSV, encoding="utf-8-sig")
    yield path
    path.unlink()


def test_startup_lists_have_a1111s_shapes(easel, styles_file):
    with easel.client() as client:
        assert client.get("/sdapi/v1/prompt-styles").json() == [
            {"name": "framed", "prompt": "a photo of {prompt}, framed", "negative_prompt": "blurry"},
            {"name": "bright", "prompt": "bright colours", "negative_prompt": ""},
        ]
        assert client.get("/sdapi/v1/face-restorers").json() == []
        modes = [m["name"] for m in client.get("/sdapi/v1/latent-upscale-modes").json()]
        assert modes[0] == "Latent" and "Latent (nearest-exact)" in modes
        for empty in ("/sd-modules", "/hypernetworks", "/realesrgan-models"):
            response = client.get(f"/sdapi/v1{empty}")
            assert (response.status_code, response.json()) == (200, []), empty
        # the selectable scripts (the bundled X/Y/Z plot), once per mode, A1111's entry shape
        info = client.get("/sdapi/v1/script-info").json()
        assert {(e["name"], e["is_img2img"]) for e in info} == {("x/y/z plot", False), ("x/y/z plot", True)}
        assert all(set(e) == {"name", "is_alwayson", "is_img2img", "args"} for e in info)
        # VAE files are listed (tests/test_vae_selection.py checks which): A1111's entry shape
        assert all(set(vae) == {"model_name", "filename"} for vae in client.get("/sdapi/v1/sd-vae").json())
        assert client.get("/sdapi/v1/embeddings").json() == {"loaded": {}, "skipped": {}}
        assert client.get("/sdapi/v1/cmd-flags").json()["api_server_stop"] is False
        for action in ("/refresh-checkpoints", "/refresh-loras", "/refresh-embeddings", "/refresh-vae"):
            assert client.post(f"/sdapi/v1{action}").status_code == 200, action
        assert client.post("/sdapi/v1/unload-checkpoint").json() == {}
        assert client.post("/sdapi/v1/reload-checkpoint").json() == {}


def test_without_styles_file_the_list_is_empty(easel):
    with easel.client() as client:
        assert client.get("/sdapi/v1/prompt-styles").json() == []


def test_refused_actions_say_why_and_are_logged(easel, caplog):
    with easel.client() as client, caplog.at_level("INFO", logger="easel.api"):
        stop = client.post("/sdapi/v1/server-stop")
        assert stop.status_code == 403 and "--api-server-stop" in stop.json()["detail"]
        assert client.post("/sdapi/v1/server-kill").status_code == 403
        restart = client.post("/sdapi/v1/server-restart")
        assert restart.status_code == 501 and "supervisor" in restart.json()["detail"]
        # no interrogator for the name: a 4xx that says what to install, never a 404
        interrogate = client.post(
            "/sdapi/v1/interrogate", json={"image": b64_png_small(), "model": "deepdanbooru"}
        )
        assert interrogate.status_code == 422 and "register_interrogators" in interrogate.json()["detail"]
        bad_image = client.post("/sdapi/v1/interrogate", json={"image": "!!", "model": "clip"})
        assert bad_image.status_code == 422 and "image" in bad_image.text
        assert client.get("/api/v1/health").json()["status"] == "ok"  # still up
    assert "refused /sdapi/v1/server-stop" in caplog.text and "refused /sdapi/v1/interrogate" in caplog.text


def b64_png_small() -> str:
    from PIL import Image

    return b64_png(Image.new("RGB", (16, 16), "red"))


BASE = {"prompt": "a red circle", "width": 64, "height": 64, "sampler_name": "Euler", "cfg_scale": 2}


def test_a1111_coercion_on_sdapi_only(easel):
    with easel.client() as client:
        response = client.post(
            "/sdapi/v1/txt2img",
            json={
                **BASE, "steps": "2", "seed": None, "batch_size": None, "n_iter": 1.0, "width": 64.9,
                "enable_hr": True, "hr_scale": "1.5", "hr_second_pass_steps": 2.5, "denoising_strength": "0.5",
            },
        )  # fmt: skip
        assert response.status_code == 200, response.text[:500]
        info = json.loads(response.json()["info"])
        infotext = info["infotexts"][0]
        # 2.5 -> 2 (truncated, as A1111's pydantic 1 does), "2" -> 2, 64.9 -> 64
        assert "Steps: 2," in infotext and "Hires steps: 2," in infotext and "Size: 64x64" in infotext
        assert "Hires upscale: 1.5" in infotext and "Denoising strength: 0.5" in infotext
        # null seed: the default, a random one, and the one written into the infotext
        assert 0 <= info["seed"] < 2**32 and info["all_seeds"] == [info["seed"]]
        assert f"Seed: {info['seed']}," in infotext
        assert info["batch_size"] == 1
        # text that is no number is still refused, naming the field
        bad = client.post("/sdapi/v1/txt2img", json={**BASE, "steps": "twenty"})
        assert bad.status_code == 422 and "steps" in bad.json()["errors"]
        # the native API stays strict
        native = client.post("/api/v1/jobs", json={"prompt": "x", "model": TINY_MODEL, "steps": 2.5})
        assert native.status_code == 422 and "steps" in native.text


def test_styles_apply_and_are_recorded(easel, styles_file):
    with easel.client() as client:
        response = client.post(
            "/sdapi/v1/txt2img",
            json={
                **BASE,
                "steps": 2,
                "prompt": "a cat",
                "negative_prompt": "dark",
                "styles": ["framed", "bright"],
            },
        )
        assert response.status_code == 200, response.text[:500]
        info = json.loads(response.json()["info"])
        # A1111's merge: the placeholder takes the prompt; a style without one is appended
        assert info["prompt"] == "a photo of a cat, framed, bright colours"
        assert info["negative_prompt"] == "dark, blurry"
        assert info["styles"] == ["framed", "bright"]
        assert 'Styles array: "[\\"framed\\", \\"bright\\"]"' in info["infotexts"][0]
        # an unknown name (the AIYA bot sends "None") is skipped as A1111 skips it, and said
        unknown = client.post("/sdapi/v1/txt2img", json={**BASE, "steps": 2, "styles": ["None"]})
        assert unknown.status_code == 200
        info = json.loads(unknown.json()["info"])
        assert info["prompt"] == BASE["prompt"]
        assert any("'None' is not in styles.csv" in w for w in info["warnings"])
