"""The ControlNet extension over HTTP, on a real uvicorn server: sd-webui-controlnet's
``alwayson_scripts.controlnet.args`` in ``/sdapi/v1/txt2img``, the native job field, its
``/controlnet/*`` routes, and 422s that name the field for bad input."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.api.conftest import serving
from tests.api.test_native_api import wait_for_status
from tests.controlnet_files import build_models_folder


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_sd15_dir, tiny_sdxl_dir):
    models = build_models_folder(tmp_path_factory.mktemp("cn-api-models"), tiny_sd15_dir, tiny_sdxl_dir)
    with serving(tmp_path_factory.mktemp("cn-api-data"), models) as running:
        yield running


def b64_circle(size: int = 64) -> str:
    image = Image.new("RGB", (size, size), (20, 20, 120))
    ImageDraw.Draw(image).ellipse([8, 20, 32, 44], fill=(240, 200, 30))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def txt2img(client, units=None, **extra):
    body = {
        "prompt": "a yellow circle",
        "seed": 4,
        "steps": 2,
        "width": 64,
        "height": 64,
        "override_settings": {"sd_model_checkpoint": "tiny-sd15"},
        **extra,
    }
    if units is not None:
        body["alwayson_scripts"] = {"controlnet": {"args": units}}
    return client.post("/sdapi/v1/txt2img", json=body)


def decoded(response) -> np.ndarray:
    data = base64.b64decode(response.json()["images"][0])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def a1111_unit(**overrides):
    unit = {
        "enabled": True,
        "input_image": b64_circle(),
        "module": "canny",
        "model": "tiny-sd15-cn [00000000]",
        "weight": 1.0,
        "guidance_start": 0.0,
        "guidance_end": 1.0,
        "resize_mode": "Crop and Resize",
        "processor_res": 512,
        "threshold_a": 100,
        "threshold_b": 200,
        "control_mode": "Balanced",
        "pixel_perfect": False,
        "low_vram": False,
    }
    unit.update(overrides)
    return unit


def test_lists_and_detect(server):
    with server.client() as client:
        models = client.get("/controlnet/model_list").json()
        assert {"tiny-sd15-cn", "tiny-sd15-cn-file", "tiny-sdxl-cn"} <= set(models["model_list"])
        assert "evil" not in models["model_list"] and "pickle" in models["model_detail"]["evil"]["problem"]
        modules = client.get("/controlnet/module_list").json()
        assert {"none", "canny", "binary", "shuffle", "depth_midas", "openpose"} <= set(
            modules["module_list"]
        )
        assert modules["module_detail"]["canny"]["model_free"] is True
        assert modules["module_detail"]["depth_midas"]["missing_weights"] == ["dpt_hybrid-midas-501f0c75.pt"]
        assert client.get("/controlnet/version").json() == {"version": 2}
        detected = client.post(
            "/controlnet/detect",
            json={"controlnet_module": "canny", "controlnet_input_images": [b64_circle()]},
        )
        assert detected.status_code == 200 and detected.json()["info"] == "Success"
        edges = np.asarray(Image.open(io.BytesIO(base64.b64decode(detected.json()["images"][0]))))
        assert edges.shape == (64, 64, 3) and 0 < (edges > 0).mean() < 0.3
        bad = client.post(
            "/controlnet/detect", json={"controlnet_module": "canny", "controlnet_input_images": ["AAAA"]}
        )
        assert bad.status_code == 422 and "controlnet_input_images.0" in bad.json()["errors"]
        missing = client.post(
            "/controlnet/detect",
            json={"controlnet_module": "openpose", "controlnet_input_images": [b64_circle()]},
        )
        assert missing.status_code == 422 and "body_pose_model.pth" in missing.json()["errors"]


def test_a1111_controlnet_requests(server):
    with server.client() as client:
        plain = txt2img(client)
        assert plain.status_code == 200, plain.text
        controlled = txt2img(client, [a1111_unit()])
        assert controlled.status_code == 200, controlled.text
        assert not np.array_equal(decoded(controlled), decoded(plain))
        assert "ControlNet 0" in controlled.json()["info"]
        zero = txt2img(client, [a1111_unit(weight=0)])
        assert np.array_equal(decoded(zero), decoded(plain))
        two = txt2img(
            client, [a1111_unit(), a1111_unit(image=b64_circle(), model="tiny-sd15-cn-b", input_image=None)]
        )
        assert two.status_code == 200, two.text
        assert not np.array_equal(decoded(two), decoded(controlled))


def test_native_job_with_units(server):
    with server.client() as client:
        response = client.post(
            "/api/v1/jobs",
            json={
                "prompt": "a yellow circle",
                "seed": 4,
                "steps": 2,
                "width": 64,
                "height": 64,
                "model": "tiny-sd15",
                "extension_args": {
                    "controlnet": {
                        "units": [{"image": b64_circle(), "preprocessor": "canny", "model": "tiny-sd15-cn"}]
                    }
                },
            },
        )
        assert response.status_code == 202, response.text
        record = wait_for_status(client, response.json()["id"], {"done", "failed"})
        assert record["status"] == "done", record


@pytest.mark.parametrize(
    ("unit", "field", "message"),
    [
        ({"model": "tiny-sdxl-cn"}, "alwayson_scripts.controlnet.args.0.model", "is a sdxl ControlNet"),
        (
            {"module": "depth_midas"},
            "alwayson_scripts.controlnet.args.0.module",
            "dpt_hybrid-midas-501f0c75.pt",
        ),
        (
            {"input_image": "bm90IGFuIGltYWdl"},
            "alwayson_scripts.controlnet.args.0.input_image",
            "not an image Pillow can read",
        ),
    ],
)
def test_bad_units_are_422_naming_the_field(server, unit, field, message):
    with server.client() as client:
        response = txt2img(client, [a1111_unit(**unit)])
        assert response.status_code == 422, response.text
        assert field in response.json()["errors"] and message in response.json()["errors"]
        assert txt2img(client).status_code == 200


def img2img(client, units=None, **extra):
    body = {
        "init_images": [b64_circle()],
        "denoising_strength": 0.7,
        "prompt": "a yellow circle",
        "seed": 4,
        "steps": 3,
        "width": 64,
        "height": 64,
        "override_settings": {"sd_model_checkpoint": "tiny-sd15"},
        **extra,
    }
    if units is not None:
        body["alwayson_scripts"] = {"controlnet": {"args": units}}
    return client.post("/sdapi/v1/img2img", json=body)


def test_unit_without_image_uses_the_img2img_init_image(server):
    """sd-webui-controlnet: a unit with a model and no image takes the init image (fitted
    as img2img fits it: Just Resize). The reference: the same unit given that image."""
    with server.client() as client:
        plain = img2img(client)
        implicit = img2img(client, [a1111_unit(input_image=None, resize_mode="Crop and Resize")])
        explicit = img2img(client, [a1111_unit(input_image=b64_circle(), resize_mode="Just Resize")])
        for response in (plain, implicit, explicit):
            assert response.status_code == 200, response.text
        assert np.array_equal(decoded(implicit), decoded(explicit))
        assert not np.array_equal(decoded(implicit), decoded(plain))


def test_unit_without_image_in_txt2img_is_refused_as_sd_webui_controlnet_does(server):
    with server.client() as client:
        response = txt2img(client, [a1111_unit(input_image=None)])
        assert response.status_code == 422, response.text
        errors = response.json()["errors"]
        assert "alwayson_scripts.controlnet.args.0.input_image" in errors
        assert "controlnet is enabled but no input image is given" in errors


def test_control_modes_by_name_index_and_guessmode(server):
    with server.client() as client:
        images = {}
        for key, unit in {
            "balanced": a1111_unit(),
            "balanced0": a1111_unit(control_mode=0),
            "prompt": a1111_unit(control_mode="My prompt is more important"),
            "prompt1": a1111_unit(control_mode=1),
            "control": a1111_unit(control_mode="ControlNet is more important"),
            "control2": a1111_unit(control_mode="2"),
            "guess": {k: v for k, v in a1111_unit(guessmode=True).items() if k != "control_mode"},
        }.items():
            response = txt2img(client, [unit])
            assert response.status_code == 200, (key, response.text)
            images[key] = decoded(response)
        assert np.array_equal(images["balanced"], images["balanced0"])
        assert np.array_equal(images["prompt"], images["prompt1"])
        assert np.array_equal(images["control"], images["control2"])
        assert np.array_equal(images["control"], images["guess"])
        assert not np.array_equal(images["balanced"], images["prompt"])
        assert not np.array_equal(images["prompt"], images["control"])
        bad = txt2img(client, [a1111_unit(control_mode="Prompt first")])
        assert bad.status_code == 422
        assert "alwayson_scripts.controlnet.args.0.control_mode" in bad.json()["errors"]
