"""The bundled LoRA extension end to end on the tiny SD1.5 model: real LoRA files
(PEFT and kohya layouts), hot-swapping without reloading, bit-identical base images,
clear warnings for files that cannot apply, and A1111's ``Lora hashes`` infotext."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from core.saving.infotext import parse_infotext
from extensions.lora import STATE
from extensions.lora.syntax import extract_tags, from_extension_args
from plugin_api.types import GenerationRequest
from tests.lora_files import make_peft_lora, to_kohya


@pytest.fixture(scope="module")
def lora_models(tmp_path_factory, tiny_sd15_dir):
    root = tmp_path_factory.mktemp("lora-models")
    (root / "Stable-diffusion").mkdir()
    (root / "Stable-diffusion" / "tiny-sd15").symlink_to(tiny_sd15_dir, target_is_directory=True)
    lora = root / "Lora"
    style_a = make_peft_lora(tiny_sd15_dir, lora / "style_a.safetensors", seed=1)
    make_peft_lora(tiny_sd15_dir, lora / "peft_b.safetensors", seed=7)
    state_a = load_file(str(style_a))
    (lora / "kohya").mkdir()
    save_file(to_kohya(state_a), str(lora / "kohya" / "style_a_kohya.safetensors"))
    save_file(to_kohya(load_file(str(lora / "peft_b.safetensors"))), str(lora / "style_b.safetensors"))
    (lora / "peft_b.safetensors").unlink()
    raw = style_a.read_bytes()
    (lora / "broken.safetensors").write_bytes(raw[: len(raw) // 2])  # a truncated download
    save_file(
        {
            "unet.no_such_block.attn1.to_q.lora_A.weight": torch.ones(4, 32),
            "unet.no_such_block.attn1.to_q.lora_B.weight": torch.ones(32, 4),
        },
        str(lora / "mismatch.safetensors"),
    )
    xl = dict(state_a)
    xl["text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight"] = torch.ones(4, 32)
    save_file(xl, str(lora / "xl_style.safetensors"))
    torch.save({"x": torch.ones(1)}, lora / "evil.pt")
    return root


@pytest.fixture(scope="module")
def engine(make_host, lora_models):
    from core.engine import Engine

    host = make_host(models_dir=lora_models)
    assert host.extensions.records["lora"].state == "loaded", host.extensions.records["lora"].error
    return Engine(host)


def generate(engine, prompt="a red circle", **extra):
    request = GenerationRequest(
        prompt=prompt, seed=3, steps=2, width=64, height=64, model="tiny-sd15", save_images=False, **extra
    )
    result = engine.generate(request)
    return np.array(result.images[0]), result


@pytest.fixture(scope="module")
def base(engine):
    """The image before any LoRA was ever loaded onto the model."""
    image, result = generate(engine)
    assert result.warnings == []
    return image


def a1111_hash(path):
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return hashlib.sha256(raw[8 + length :]).hexdigest()[:12]


def test_tags_are_parsed_and_removed():
    prompt, uses, problems = extract_tags("a cat, <lora:style_a:0.8>, blue <lora:b> <lora:c:unet=0.5:te=0.2>")
    assert prompt == "a cat, blue"
    assert [(u.name, u.unet, u.te) for u in uses] == [("style_a", 0.8, 0.8), ("b", 1.0, 1.0), ("c", 0.5, 0.2)]
    assert problems == []
    prompt, uses, problems = extract_tags("<lora:x:lots> dog")
    assert prompt == "dog" and uses == [] and "'lots' is not a number" in problems[0]
    uses, problems = from_extension_args({"loras": [{"name": "a", "weight": 0.5}, {"weight": 1}]})
    assert [(u.name, u.unet) for u in uses] == [("a", 0.5)] and "needs a 'name'" in problems[0]


def test_listing_names_family_rank_hash_and_refuses_pickle(engine, lora_models):
    infos = {i.name: i for i in STATE.library.scan()}
    assert {"style_a", "style_b", "kohya/style_a_kohya", "broken", "mismatch", "xl_style", "evil"} <= set(
        infos
    )
    a = infos["style_a"]
    assert (a.family, a.rank, a.hash) == ("sd15", 4, a1111_hash(lora_models / "Lora" / "style_a.safetensors"))
    assert infos["kohya/style_a_kohya"].family == "sd15" and infos["style_b"].rank == 4
    assert infos["xl_style"].family == "sdxl"
    assert "pickle" in infos["evil"].problem and "convert it to .safetensors" in infos["evil"].problem
    assert "broken.safetensors" in infos["broken"].problem


def test_lora_changes_the_image_and_is_recorded(engine, base, lora_models):
    image, result = generate(engine, "a red circle, <lora:style_a:1>")
    assert result.warnings == []
    assert result.prompt == "a red circle"  # what the encoder saw
    assert not np.array_equal(image, base)
    expected = a1111_hash(lora_models / "Lora" / "style_a.safetensors")
    assert f'Lora hashes: "style_a: {expected}"' in result.infotexts[0]
    # the kohya file holds the same weights: the same picture (up to float rounding)
    kohya, result = generate(engine, "a red circle <lora:style_a_kohya:1>")
    assert result.warnings == []
    assert np.abs(kohya.astype(int) - image.astype(int)).max() <= 2
    # weight 0 and no tag: exactly the base model again
    zero, result = generate(engine, "a red circle <lora:style_a:0>")
    assert np.array_equal(zero, base) and "Lora hashes" not in result.infotexts[0]
    plain, _ = generate(engine)
    assert np.array_equal(plain, base)


def test_switching_never_reloads_the_model_or_the_files(engine, base):
    first_a, _ = generate(engine, "a red circle <lora:style_a:1>")
    first_b, _ = generate(engine, "a red circle <lora:style_b:0.7>")
    loads, reads = engine.models.load_count, STATE.library.file_reads
    unet = engine.models.get("tiny-sd15").components["unet"]
    prompts = ["<lora:style_a:1>", "<lora:style_b:0.7>", "", "<lora:style_a:0.5> <lora:style_b:0.5>"]
    for i in range(20):
        tag = prompts[i % 4]
        image, result = generate(engine, f"a red circle {tag}")
        assert result.warnings == []
        if tag == "<lora:style_a:1>":
            assert np.array_equal(image, first_a)
        elif tag == "<lora:style_b:0.7>":
            assert np.array_equal(image, first_b)
        elif tag == "":
            assert np.array_equal(image, base)
        else:
            assert not np.array_equal(image, first_a) and not np.array_equal(image, base)
    assert engine.models.load_count == loads
    assert STATE.library.file_reads == reads
    assert engine.models.get("tiny-sd15").components["unet"] is unet


def test_structured_field_and_several_loras(engine, base):
    tagged, result = generate(engine, "a red circle <lora:style_a:0.5> <lora:style_b:0.5>")
    assert result.prompt == "a red circle"
    assert 'Lora hashes: "style_a: ' in result.infotexts[0] and ", style_b: " in result.infotexts[0]
    structured, result = generate(
        engine,
        extension_args={
            "lora": {"loras": [{"name": "style_a", "weight": 0.5}, {"name": "style_b", "weight": 0.5}]}
        },
    )
    assert result.warnings == [] and np.array_equal(structured, tagged)


BAD_LORAS = {
    "broken": ["broken.safetensors", "truncated"],
    "mismatch": ["mismatch.safetensors", "unet.no_such_block.attn1.to_q.lora_A.weight", "match nothing"],
    "xl_style": ["xl_style.safetensors", "sdxl"],
    "evil": ["evil.pt", "pickle"],
    "nobody": ["unknown LoRA 'nobody'", "style_a"],
}


def test_a_lora_that_cannot_apply_warns_and_leaves_the_model_untouched(engine, base):
    for tag, expected in BAD_LORAS.items():
        image, result = generate(engine, f"a red circle <lora:{tag}:1>")
        assert len(result.warnings) == 1, result.warnings
        for part in expected:
            assert part in result.warnings[0], (tag, result.warnings)
        assert "Lora hashes" not in parse_infotext(result.infotexts[0])
        assert np.array_equal(image, base), tag  # made without it
    # next to a good LoRA, only the bad ones are left out (and not claimed)
    good, _ = generate(engine, "a red circle <lora:style_a:1>")
    tags = " ".join(f"<lora:{t}:1>" for t in BAD_LORAS)
    mixed, result = generate(engine, f"a red circle <lora:style_a:1> {tags}")
    assert np.array_equal(mixed, good) and len(result.warnings) == len(BAD_LORAS)
    assert (
        parse_infotext(result.infotexts[0])["Lora hashes"] == f"style_a: {STATE.library.find('style_a').hash}"
    )
    plain, _ = generate(engine)
    assert np.array_equal(plain, base)


def test_browser_tab_lists_loras_and_makes_tags(engine):
    import gradio as gr

    from extensions.lora.tab import table_rows, tag_for

    rows = table_rows(STATE.library)
    names = [r[0] for r in rows]
    index = names.index("style_a")
    assert rows[index][1:4] == ["sd15", 4, STATE.library.find("style_a").hash]
    assert tag_for(rows, index, 0.75) == "<lora:style_a:0.75>"
    assert rows[names.index("evil")][4].startswith("refused")
    tabs = [tab for extension, tab in engine.host.ui_tabs() if extension == "lora"]
    assert [t.title for t in tabs] == ["LoRA"]
    with gr.Blocks() as blocks:
        tabs[0].build()
    # a row click reaches the handler with its SelectData, as Gradio injects it
    from gradio.helpers import special_args

    (select,) = [f for f in blocks.fns.values() if "select" in [t[1] for t in f.targets]]
    event = gr.SelectData(None, {"index": [index, 0], "value": "style_a"})
    inputs = special_args(select.fn, [rows, 0.5], event_data=event)[0]
    assert select.fn(*inputs) == (index, "<lora:style_a:0.5>")
