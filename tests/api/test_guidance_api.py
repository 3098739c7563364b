"""CFG rescale and FreeU over A1111's API on the real server: ``alwayson_scripts`` reach the
extensions, the infotext records them, and a bad argument is a 422 naming its field."""

from __future__ import annotations

import json

from core.saving import parse_infotext

BODY = {"prompt": "a red circle", "negative_prompt": "blurry", "seed": 3, "steps": 3, "width": 64, "height": 64,
        "cfg_scale": 12, "sampler_name": "Euler"}  # fmt: skip


def test_alwayson_scripts_reach_cfg_rescale_and_freeu(easel):
    scripts = {"cfg_rescale": {"args": [0.7]}, "freeu": {"args": [1.5, 1.6, 0.9, 0.2]}}
    with easel.client() as client:
        plain = client.post("/sdapi/v1/txt2img", json=BODY)
        tuned = client.post("/sdapi/v1/txt2img", json={**BODY, "alwayson_scripts": scripts})
    assert plain.status_code == 200 and tuned.status_code == 200, tuned.text
    params = parse_infotext(json.loads(tuned.json()["info"])["infotexts"][0])
    assert params["CFG Rescale"] == "0.7"
    assert params["FreeU"] == "b1=1.5, b2=1.6, s1=0.9, s2=0.2"
    assert "CFG Rescale" not in json.loads(plain.json()["info"])["infotexts"][0]
    assert tuned.json()["images"][0] != plain.json()["images"][0]


def test_a_bad_argument_is_a_422_naming_the_field(easel):
    with easel.client() as client:
        response = client.post(
            "/sdapi/v1/txt2img", json={**BODY, "alwayson_scripts": {"cfg_rescale": {"args": [2]}}}
        )
    assert response.status_code == 422
    assert "extension_args.cfg_rescale.args.0" in response.text
