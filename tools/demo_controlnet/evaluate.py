"""Measure whether the demo ControlNet puts the shape where the edge map says.

    nice -n 10 env OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python -m tools.demo_controlnet.evaluate

For each of left/right/top/bottom and a few seeds: a circle of some colour rendered at that
position, its canny map as the control image, and a prompt that names the OPPOSITE
position. ``tools/demo_model/judge.py`` reads the position of the generated shape; the
accuracy is the fraction placed where the edge map (not the prompt) says. The same prompts
without the ControlNet give the baseline.

Uses diffusers' ``StableDiffusionControlNetPipeline`` (128x128, 20 Euler steps, one CFG
scale throughout: ``common.DEFAULT_CFG``); Easel's own path is checked by the extension's tests.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from PIL import Image

from tools.demo_controlnet.train import OUT_DIR, canny_map
from tools.demo_model import judge, scenes
from tools.demo_model.common import DEFAULT_CFG, DEFAULT_STEPS, IMAGE_SIZE, MODEL_DIR

OPPOSITE = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}
# (circle colour, background) pairs cycled through the seeds
COLOURS = [("red", "blue"), ("yellow", "purple"), ("white", "green"), ("orange", "black"), ("green", "white")]


def cases(seeds_per_position: int) -> list[dict]:
    """[{position, prompt, seed, control}] with the prompt naming the opposite position."""
    out = []
    for p_index, position in enumerate(OPPOSITE):
        for k in range(seeds_per_position):
            colour, background = COLOURS[(p_index + k) % len(COLOURS)]
            scene = scenes.Scene(background, (scenes.make_shape("circle", colour, position, "large"),))
            liar = scenes.Scene(
                background, (scenes.make_shape("circle", colour, OPPOSITE[position], "large"),)
            )
            prompt = scenes.caption(liar, template=0, with_size=False, with_pos=True)
            control = Image.fromarray(canny_map(scenes.render(scene, IMAGE_SIZE)))
            out.append({"position": position, "prompt": prompt, "seed": 100 + k, "control": control})
    return out


def load_pipelines(controlnet_dir: Path, base_dir: Path = MODEL_DIR):
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline, StableDiffusionPipeline

    base = StableDiffusionPipeline.from_pretrained(
        base_dir,
        local_files_only=True,
        safety_checker=None,
        feature_extractor=None,
        torch_dtype=torch.float32,
    )
    controlnet = ControlNetModel.from_pretrained(
        controlnet_dir, local_files_only=True, torch_dtype=torch.float32
    )
    with_cn = StableDiffusionControlNetPipeline(
        **{k: v for k, v in base.components.items() if k not in ("image_encoder",)},
        controlnet=controlnet,
    )
    for pipe in (base, with_cn):
        pipe.set_progress_bar_config(disable=True)
    return base, with_cn


@torch.no_grad()
def position_accuracy(
    controlnet_dir: Path = OUT_DIR,
    seeds_per_position: int = 3,
    baseline: bool = True,
    base_dir: Path = MODEL_DIR,
) -> dict:
    base, with_cn = load_pipelines(Path(controlnet_dir), Path(base_dir))
    hits = {"controlnet": 0, "baseline": 0}
    rows = []
    common = dict(
        height=IMAGE_SIZE, width=IMAGE_SIZE, num_inference_steps=DEFAULT_STEPS, guidance_scale=DEFAULT_CFG
    )
    for case in cases(seeds_per_position):
        generator = torch.Generator().manual_seed(case["seed"])
        image = with_cn(case["prompt"], image=case["control"], generator=generator, **common).images[0]
        got, got_plain = judge.judge(image).position, None
        if baseline:
            generator = torch.Generator().manual_seed(case["seed"])
            got_plain = judge.judge(base(case["prompt"], generator=generator, **common).images[0]).position
        hits["controlnet"] += got == case["position"]
        hits["baseline"] += got_plain == case["position"]
        rows.append(
            {"want": case["position"], "prompt": case["prompt"], "controlnet": got, "baseline": got_plain}
        )
    total = len(rows)
    return {
        "cases": total,
        "position_accuracy_controlnet": round(hits["controlnet"] / total, 3),
        "position_accuracy_baseline": round(hits["baseline"] / total, 3),
        "rows": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--controlnet", type=Path, default=OUT_DIR)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--no-baseline", action="store_true", help="skip the runs without ControlNet")
    ap.add_argument("--base", type=Path, default=MODEL_DIR, help="the demo model folder")
    args = ap.parse_args()
    torch.set_num_threads(1)
    report = position_accuracy(args.controlnet, args.seeds, not args.no_baseline, args.base)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
