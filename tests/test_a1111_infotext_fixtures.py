"""Infotext lines in the form AUTOMATIC1111 1.10 writes them (its ``create_infotext``:
fields joined by ", ", values with a comma, colon or newline JSON-quoted by ``quote``;
``Lora hashes``, hires fields, sd-webui-controlnet's ``ControlNet N`` units, multi-line
prompts), parsed as A1111's ``parse_generation_parameters`` splits them (same regex, same
``unquote``), and written back byte for byte by Easel's ``build_infotext``.

The expected dictionaries are written out by hand from those rules, not produced by the
code under test.
"""

from __future__ import annotations

import pytest

from core.saving.infotext import build_infotext, parse_infotext

HIRES_LORA = (
    "masterpiece, a cat sitting on a sofa, <lora:add_detail:0.6>\n"
    "Negative prompt: lowres, bad anatomy\n"
    "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1234567890, "
    "Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Denoising strength: 0.45, "
    "Hires upscale: 2, Hires steps: 15, Hires upscaler: R-ESRGAN 4x+, "
    'Lora hashes: "add_detail: 7c6bad76eb54, epiNoiseoffset_v2: d1131f7207d6", Version: v1.10.1'
)

CONTROLNET = (
    "a house by a lake\n"
    "Steps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7.5, Seed: 42, Size: 512x512, "
    "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, "
    'ControlNet 0: "Module: canny, Model: control_v11p_sd15_canny [d14c016b], Weight: 1, '
    "Resize Mode: Crop and Resize, Processor Res: 512, Threshold A: 100, Threshold B: 200, "
    'Guidance Start: 0, Guidance End: 1, Pixel Perfect: False, Control Mode: Balanced", '
    'ControlNet 1: "Module: none, Model: control_v11f1p_sd15_depth [cfd03158], Weight: 0.5, '
    "Resize Mode: Just Resize, Processor Res: 512, Threshold A: 0.5, Threshold B: 0.5, "
    'Guidance Start: 0.1, Guidance End: 0.8, Pixel Perfect: True, Control Mode: My prompt is more important", '
    "Version: v1.10.1"
)

QUOTING = (
    "line one of the prompt\n"
    "line two, with a comma\n"
    "Negative prompt: ugly\n"
    "worst quality\n"
    "Steps: 30, Sampler: DPM++ SDE, Schedule type: Karras, CFG scale: 5.5, Seed: 7, Size: 640x448, "
    'Model: "my model: v2, final", Clip skip: 2, ENSD: 31337, '
    'TI hashes: "easynegative: c74b4e810b03", Style: "say \\"hi\\", friend", Emphasis: Original'
)

EXPECTED = {
    "hires + lora": (
        HIRES_LORA,
        {
            "Prompt": "masterpiece, a cat sitting on a sofa, <lora:add_detail:0.6>",
            "Negative prompt": "lowres, bad anatomy",
            "Steps": "28",
            "Sampler": "DPM++ 2M",
            "Schedule type": "Karras",
            "CFG scale": "7",
            "Seed": "1234567890",
            "Size-1": "512",
            "Size-2": "768",
            "Model hash": "6ce0161689",
            "Model": "v1-5-pruned-emaonly",
            "Denoising strength": "0.45",
            "Hires upscale": "2",
            "Hires steps": "15",
            "Hires upscaler": "R-ESRGAN 4x+",
            "Lora hashes": "add_detail: 7c6bad76eb54, epiNoiseoffset_v2: d1131f7207d6",
            "Version": "v1.10.1",
        },
    ),
    "controlnet units": (
        CONTROLNET,
        {
            "Prompt": "a house by a lake",
            "Negative prompt": "",
            "Steps": "20",
            "Sampler": "Euler a",
            "Schedule type": "Automatic",
            "CFG scale": "7.5",
            "Seed": "42",
            "Size-1": "512",
            "Size-2": "512",
            "Model hash": "6ce0161689",
            "Model": "v1-5-pruned-emaonly",
            "ControlNet 0": (
                "Module: canny, Model: control_v11p_sd15_canny [d14c016b], Weight: 1, "
                "Resize Mode: Crop and Resize, Processor Res: 512, Threshold A: 100, Threshold B: 200, "
                "Guidance Start: 0, Guidance End: 1, Pixel Perfect: False, Control Mode: Balanced"
            ),
            "ControlNet 1": (
                "Module: none, Model: control_v11f1p_sd15_depth [cfd03158], Weight: 0.5, "
                "Resize Mode: Just Resize, Processor Res: 512, Threshold A: 0.5, Threshold B: 0.5, "
                "Guidance Start: 0.1, Guidance End: 0.8, Pixel Perfect: True, "
                "Control Mode: My prompt is more important"
            ),
            "Version": "v1.10.1",
        },
    ),
    "quoting + multi-line": (
        QUOTING,
        {
            "Prompt": "line one of the prompt\nline two, with a comma",
            "Negative prompt": "ugly\nworst quality",
            "Steps": "30",
            "Sampler": "DPM++ SDE",
            "Schedule type": "Karras",
            "CFG scale": "5.5",
            "Seed": "7",
            "Size-1": "640",
            "Size-2": "448",
            "Model": "my model: v2, final",
            "Clip skip": "2",
            "ENSD": "31337",
            "TI hashes": "easynegative: c74b4e810b03",
            "Style": 'say "hi", friend',
            "Emphasis": "Original",
        },
    ),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_a1111_lines_parse_as_a1111_parses_them(name):
    text, expected = EXPECTED[name]
    assert parse_infotext(text) == expected


@pytest.mark.parametrize("name", list(EXPECTED))
def test_the_fields_written_back_give_the_same_bytes(name):
    text, _ = EXPECTED[name]
    parsed = parse_infotext(text)
    prompt, negative = parsed.pop("Prompt"), parsed.pop("Negative prompt")
    # the parser gives "Size: WxH" as Size-1/Size-2 only (as A1111's does): join them back
    size = f"{parsed.pop('Size-1')}x{parsed.pop('Size-2')}"
    fields = {}
    for key, value in parsed.items():
        fields[key] = value
        if key == "Seed":
            fields["Size"] = size  # A1111 writes Size right after Seed
    assert build_infotext(prompt, negative, fields) == text


def test_a_prompt_whose_last_line_looks_like_parameters_is_still_the_prompt():
    # A1111 takes the last line as parameters only when it holds at least 3 of them
    text = "a sign that says Steps: 3\nSteps: 20, Sampler: Euler, Seed: 1"
    parsed = parse_infotext(text)
    assert parsed["Prompt"] == "a sign that says Steps: 3" and parsed["Steps"] == "20"
    two = "a photo\nStyle: x, Mood: y"
    assert parse_infotext(two) == {"Prompt": "a photo\nStyle: x, Mood: y", "Negative prompt": ""}
