"""/sdapi/v1/interrogate on a real server: the demo interrogator captions an image the
shipped demo model drew, BLIP answers once its folder is in models/BLIP (a tiny one
built from a config), and a name nothing can answer is a 422 saying what to install."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from tests.api.conftest import serving
from tests.blip_files import build_tiny_blip

REPO_MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    models = tmp_path_factory.mktemp("interrogate-models")
    (models / "Stable-diffusion").symlink_to(REPO_MODELS / "Stable-diffusion", target_is_directory=True)
    with serving(tmp_path_factory.mktemp("interrogate-data"), models) as running:
        running.models_dir = models
        yield running


def test_demo_image_is_captioned_in_its_world(server):
    with server.client() as client:
        drawn = client.post(
            "/sdapi/v1/txt2img",
            json={"prompt": "a red circle in the center on a blue background", "seed": 1},
        )
        assert drawn.status_code == 200, drawn.text
        image = drawn.json()["images"][0]
        answer = client.post("/sdapi/v1/interrogate", json={"image": image, "model": "clip"})
        assert answer.status_code == 200, answer.text
        words = answer.json()["caption"].split()
        assert {"red", "circle", "blue"} <= set(words), answer.json()
        by_name = client.post("/sdapi/v1/interrogate", json={"image": image, "model": "easel-demo"})
        assert by_name.json() == answer.json()


def test_missing_interrogators_say_what_to_install_then_blip_answers(server):
    small = io.BytesIO()
    Image.new("RGB", (40, 40), (200, 30, 30)).save(small, format="PNG")
    image = base64.b64encode(small.getvalue()).decode()
    with server.client() as client:
        for model, names in (
            ("blip", "no BLIP captioning model in"),
            ("deepdanbooru", "register_interrogators"),
        ):
            refused = client.post("/sdapi/v1/interrogate", json={"image": image, "model": model})
            assert refused.status_code == 422, refused.text
            assert names in refused.json()["detail"] and "models/BLIP" in refused.json()["detail"]
        build_tiny_blip(server.models_dir / "BLIP" / "tiny")
        answer = client.post("/sdapi/v1/interrogate", json={"image": image, "model": "blip"})
        assert answer.status_code == 200, answer.text
        assert set(answer.json()["caption"].split()) == {"red"}
        # with BLIP present it answers A1111's "clip" for every model, before the demo one
        assert (
            client.post("/sdapi/v1/interrogate", json={"image": image, "model": "clip"}).json()
            == answer.json()
        )
