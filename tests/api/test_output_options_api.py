"""The saving settings through A1111's /sdapi/v1/options (issue #25): read under A1111's
names, set by any API client, refused with a 422 naming the option when a folder or a
name pattern would lead out of the outputs folder; /sdapi/v1/png-info reads a JPEG's
EXIF parameters as A1111 does."""

from __future__ import annotations

import base64
import io
import json
import re

import pytest
from PIL import Image

from core.saving.output_settings import OutputOptions
from core.saving.writer import save_image

A1111_NAMES = {
    "samples_format": "png", "jpeg_quality": 80, "samples_filename_pattern": "", "save_images_add_number": True,
    "save_to_dirs": True, "directories_filename_pattern": "[date]", "outdir_samples": "",
    "outdir_txt2img_samples": "txt2img-images", "outdir_img2img_samples": "img2img-images",
    "CLIP_stop_at_last_layers": 1, "sd_vae": "Automatic",
    "quicksettings_list": ["sd_model_checkpoint", "sd_vae", "CLIP_stop_at_last_layers"],
}  # fmt: skip


def test_options_read_the_saving_settings_under_a1111_names(easel_webui):
    with easel_webui.client() as client:
        options = client.get("/sdapi/v1/options").json()
    assert {key: options[key] for key in A1111_NAMES} == A1111_NAMES
    assert re.fullmatch(r"\S+ \[[0-9a-f]{10}\]", options["sd_model_checkpoint"])  # A1111's "name [hash]"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("samples_filename_pattern", "[seed]/../../x"),
        ("samples_filename_pattern", "..\\x"),
        ("directories_filename_pattern", "../[date]"),
        ("directories_filename_pattern", "/tmp/[date]"),
        ("outdir_txt2img_samples", "NUL"),
        ("outdir_samples", "C:\\outputs"),
        ("samples_format", "gif"),
        ("jpeg_quality", 101),
        ("CLIP_stop_at_last_layers", 0),
    ],
)
def test_values_that_lead_out_are_a_422_naming_the_option(easel_webui, key, value):
    with easel_webui.client() as client:
        before = client.get("/sdapi/v1/options").json()
        # a good value in the same request is not saved either: a refused request changes nothing
        response = client.post("/sdapi/v1/options", json={key: value, "webp_lossless": True})
        assert response.status_code == 422 and key in response.text, response.text
        after = client.get("/sdapi/v1/options").json()
    assert after[key] == before[key] and after["webp_lossless"] is before["webp_lossless"] is False


def test_png_info_reads_a_jpeg_s_exif_parameters(easel_webui, tmp_path):
    info = "a red circle\nNegative prompt: blurry\nSteps: 2, Sampler: Euler, Seed: 5, Size: 64x64"
    path = save_image(
        Image.new("RGB", (64, 64), "red"), tmp_path, "txt2img", 5, info, "jpeg", options=OutputOptions()
    )
    with easel_webui.client() as client:
        body = client.post(
            "/sdapi/v1/png-info", json={"image": base64.b64encode(path.read_bytes()).decode()}
        ).json()
    assert body["info"] == info
    assert body["parameters"]["Negative prompt"] == "blurry" and body["parameters"]["Seed"] == "5"
    json.dumps(body)  # plain JSON
    assert Image.open(io.BytesIO(path.read_bytes())).format == "JPEG"
