"""The ESRGAN extension and hires fix over HTTP, on the real server: A1111's Extras
endpoints (also through the unmodified ``webuiapi`` client), post-sample upscaling via
``alwayson_scripts``, hires fix in txt2img, and the extension's own route."""

from __future__ import annotations

import base64
import json

import numpy as np
from PIL import Image

from core.saving import parse_infotext
from tests.api.conftest import b64_png, decode

DEMO = "easel-demo-2x"


def scene(size: int = 24, mode: str = "RGB") -> Image.Image:
    image = Image.new(mode, (size, size), (30, 60, 200, 255)[: len(mode)])
    image.paste((240, 210, 30, 128)[: len(mode)], (size // 4, size // 4, size * 3 // 4, size * 3 // 4))
    return image


def test_extension_route_lists_the_demo_upscaler_with_its_architecture(easel):
    with easel.client() as client:
        entries = client.get("/esrgan/upscalers").json()
        upscalers = client.get("/sdapi/v1/upscalers").json()
    demo = next(e for e in entries if e["name"] == DEMO)
    assert (demo["architecture"], demo["scale"], demo["error"]) == ("ESRGAN", 2, None)
    assert next(u for u in upscalers if u["name"] == DEMO)["scale"] == 2


def test_webuiapi_extras_single_and_batch(easel):
    import webuiapi  # a declared test dependency: missing is a failure, not a skip

    port = int(easel.url.rsplit(":", 1)[1])
    api = webuiapi.WebUIApi(host="127.0.0.1", port=port)
    single = api.extra_single_image(scene(), upscaler_1=DEMO, upscaling_resize=2)
    assert single.image.size == (48, 48) and DEMO in single.info
    batch = api.extra_batch_images([scene(), scene(16, "RGBA")], upscaler_1=DEMO, upscaling_resize=2)
    assert [image.size for image in batch.images] == [(48, 48), (32, 32)]
    assert batch.images[1].mode == "RGBA"  # the alpha channel came through
    alpha = np.asarray(batch.images[1].getchannel("A"))
    assert alpha[0, 0] == 255 and 100 < alpha[16, 16] < 160


def test_extras_resize_to_a_size_and_blend_two_upscalers(easel):
    image = scene(20)
    with easel.client() as client:
        fitted = client.post(
            "/sdapi/v1/extra-single-image",
            json={"image": b64_png(image), "resize_mode": 1, "upscaling_resize_w": 50, "upscaling_resize_h": 30,
                  "upscaler_1": DEMO},
        ).json()  # fmt: skip
        assert decode(fitted["image"]).size == (50, 30)

        def run(**fields) -> np.ndarray:
            body = {"image": b64_png(image), "upscaling_resize": 2, **fields}
            return np.asarray(
                decode(client.post("/sdapi/v1/extra-single-image", json=body).json()["image"]), float
            )

        nearest, lanczos = run(upscaler_1="Nearest"), run(upscaler_1="Lanczos")
        half = run(upscaler_1="Nearest", upscaler_2="Lanczos", extras_upscaler_2_visibility=0.5)
    assert np.abs(half - (nearest + lanczos) / 2).max() <= 1.0 and np.abs(nearest - lanczos).max() > 10


def test_extras_errors_name_the_field(easel):
    garbage = base64.b64encode(b"this is not an image").decode()
    with easel.client() as client:
        bad_image = client.post("/sdapi/v1/extra-single-image", json={"image": garbage, "upscaler_1": DEMO})
        bad_item = client.post(
            "/sdapi/v1/extra-batch-images",
            json={"imageList": [{"data": b64_png(scene()), "name": "a"}, {"data": garbage, "name": "b"}],
                  "upscaler_1": DEMO},
        )  # fmt: skip
        unknown = client.post(
            "/sdapi/v1/extra-single-image",
            json={"image": b64_png(scene()), "upscaler_2": "X", "extras_upscaler_2_visibility": 1},
        )
        healthy = easel.healthy()
    assert bad_image.status_code == 422 and "image" in bad_image.text and "not an image" in bad_image.text
    assert bad_item.status_code == 422 and "imageList.1.data" in bad_item.text
    assert unknown.status_code == 422 and "upscaler_2" in unknown.text
    assert healthy


def test_txt2img_hires_fix_with_the_demo_upscaler_and_post_sample_upscaling(easel):
    body = {
        "prompt": "a red circle", "seed": 3, "steps": 2, "width": 64, "height": 64, "cfg_scale": 5,
        "enable_hr": True, "hr_scale": 1.5, "hr_upscaler": DEMO, "hr_second_pass_steps": 1,
        "denoising_strength": 0.4,
    }  # fmt: skip
    with easel.client() as client:
        hires = client.post("/sdapi/v1/txt2img", json=body).json()
        post = client.post(
            "/sdapi/v1/txt2img",
            json={**body, "enable_hr": False, "alwayson_scripts": {"esrgan": {"args": [DEMO, 2]}}},
        ).json()
    assert decode(hires["images"][0]).size == (96, 96)
    info = json.loads(hires["info"])
    params = parse_infotext(info["infotexts"][0])
    assert (params["Hires upscale"], params["Hires steps"], params["Hires upscaler"]) == ("1.5", "1", DEMO)
    assert params["Denoising strength"] == "0.4" and info["denoising_strength"] == 0.4
    assert decode(post["images"][0]).size == (128, 128)
    assert parse_infotext(json.loads(post["info"])["infotexts"][0])["Postprocess upscaler"] == DEMO
