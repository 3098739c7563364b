"""The infotext remakes its image: PNG Info -> Send to txt2img -> Generate gives the same
pixels, with a LoRA tag and with a Chinese prompt.

As A1111, the prompt line keeps ``<lora:...>`` tags (and whatever else the user wrote);
what the text encoder saw after the transform_prompt chain is in ``Transformed prompt``.
The request is rebuilt by the WebUI's own PNG Info code (``ui.png_info``), the path a user
takes; the reference is the first image itself.
"""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from core.saving import parse_infotext, read_infotext
from plugin_api import GenerationRequest
from tests.lora_files import make_peft_lora, to_kohya


@pytest.fixture(scope="module")
def engine(make_host, tmp_path_factory, tiny_sd15_dir):
    from core.engine import Engine

    root = tmp_path_factory.mktemp("roundtrip-models")
    (root / "Stable-diffusion").mkdir()
    (root / "Stable-diffusion" / "tiny-sd15").symlink_to(tiny_sd15_dir, target_is_directory=True)
    peft = make_peft_lora(tiny_sd15_dir, root / "peft.safetensors", seed=1)
    (root / "Lora").mkdir()
    save_file(to_kohya(load_file(str(peft))), str(root / "Lora" / "style.safetensors"))  # kohya keys
    host = make_host(models_dir=root, safe_mode=True)  # the bundled lora and zh_prompt load
    for name in ("lora", "zh_prompt"):
        assert host.extensions.records[name].state == "loaded", host.extensions.records[name].error
    return Engine(host)


def first_image(engine, prompt: str, negative: str):
    request = GenerationRequest(
        prompt=prompt, negative_prompt=negative, seed=9, steps=4, width=64, height=64,
        model="tiny-sd15", sampler="Euler a", cfg_scale=6.5,
    )  # fmt: skip
    result = engine.generate(request)
    assert result.warnings == [], result.warnings
    return np.asarray(result.images[0]), read_infotext(result.paths[0])


def regenerate_from_infotext(engine, infotext: str):
    """What PNG Info -> Send to txt2img -> Generate does with the text."""
    from ui.png_info import form_fields, parse

    fields = form_fields(parse(infotext))
    result = engine.generate(GenerationRequest(**fields, save_images=False))
    assert result.warnings == [], result.warnings
    return np.asarray(result.images[0])


def without_transforms(engine, params: dict) -> np.ndarray:
    """The image of the prompt the model saw, typed in as it is (no tags, English)."""
    prompt = params.get("Transformed prompt", params["Prompt"])
    negative = params.get("Transformed negative prompt", params["Negative prompt"])
    request = GenerationRequest(
        prompt=prompt, negative_prompt=negative, seed=9, steps=4, width=64, height=64,
        model="tiny-sd15", sampler="Euler a", cfg_scale=6.5, save_images=False,
    )  # fmt: skip
    return np.asarray(engine.generate(request).images[0])


def test_lora_tag_stays_in_the_prompt_line_and_the_image_comes_back(engine):
    image, infotext = first_image(engine, "a red circle <lora:style:0.8>", "blurry")
    params = parse_infotext(infotext)
    assert params["Prompt"] == "a red circle <lora:style:0.8>"
    assert params["Transformed prompt"] == "a red circle"
    assert params["Lora hashes"].startswith("style: ")
    assert np.array_equal(regenerate_from_infotext(engine, infotext), image)
    # the LoRA matters: the prompt the model saw, without the tag, is another image
    assert not np.array_equal(without_transforms(engine, params), image)


def test_chinese_prompt_with_a_lora_comes_back(engine):
    prompt = "蓝色背景上的红色圆形 <lora:style:1>"
    image, infotext = first_image(engine, prompt, "模糊")
    params = parse_infotext(infotext)
    assert params["Prompt"] == prompt and params["Negative prompt"] == "模糊"
    assert params["Transformed prompt"] == "red circle on blue background"
    assert params["Transformed negative prompt"] == "blurry"
    assert "zh_prompt" in params["Prompt transforms"] and "lora" in params["Prompt transforms"]
    assert np.array_equal(regenerate_from_infotext(engine, infotext), image)
    assert not np.array_equal(without_transforms(engine, params), image)


def test_chinese_prompt_comes_back(engine):
    image, infotext = first_image(engine, "蓝色背景上的红色圆形", "")
    params = parse_infotext(infotext)
    assert params["Prompt"] == "蓝色背景上的红色圆形"
    assert np.array_equal(regenerate_from_infotext(engine, infotext), image)


def test_untransformed_prompt_has_no_extra_fields(engine):
    _, infotext = first_image(engine, "a red circle", "blurry")
    params = parse_infotext(infotext)
    assert params["Prompt"] == "a red circle"
    assert not {"Transformed prompt", "Transformed negative prompt", "Prompt transforms"} & set(params)
