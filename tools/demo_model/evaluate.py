"""Held-out evaluation of the demo model.

    python -m tools.demo_model.evaluate [--model DIR] [--cfg 6] [--steps 20] [--save-dir DIR]
    python -m tools.demo_model.evaluate --validation   # the 96 prompts settings are tuned on
    python -m tools.demo_model.evaluate --phrasings    # the 64 held-out phrasings (phrasings.py)
    python -m tools.demo_model.evaluate --text-encoder DIR   # the folder's model with another encoder
    python -m tools.demo_model.evaluate --prompt "a red circle on a blue background" --seed 1 --out x.png
    python -m tools.demo_model.evaluate --bench      # time a batch of 4 at 128x128, 20 steps

Generates the 48 held-out prompts of ``scenes.held_out_prompts()`` (each with its own fixed
seed) at 128x128, judges every image with ``judge.judge`` and prints the four accuracies
(foreground colour, background colour, shape, position) as JSON. CFG, steps and the late
CFG come from the model folder's ``easel.json`` unless given.

``evaluate(generate_fn)`` takes any callable ``(prompt, seed) -> PIL.Image`` so that Easel's
own engine can be plugged in; ``evaluate(generate_batch_fn=...)`` takes
``(prompts, seeds) -> list[PIL.Image]`` for batched generation. A prompt whose
``position`` is None (a phrasing that names none) is not scored on position: the position
accuracy is over the prompts that name one (``n_position``).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch

from core.models.recommended import read_recommended

from .common import DEFAULT_CFG, DEFAULT_STEPS, IMAGE_SIZE, MODEL_DIR
from .judge import judge
from .phrasings import phrasing_prompts
from .scenes import held_out_prompts, validation_prompts

KEYS = ("color", "background", "shape", "position")


def evaluate(
    generate_fn: Callable | None = None,
    generate_batch_fn: Callable | None = None,
    batch_size: int = 8,
    save_dir: str | Path | None = None,
    prompts: list[dict] | None = None,
) -> dict:
    prompts = held_out_prompts() if prompts is None else prompts
    images = []
    if generate_batch_fn is not None:
        for i in range(0, len(prompts), batch_size):
            chunk = prompts[i : i + batch_size]
            images += list(generate_batch_fn([p["prompt"] for p in chunk], [p["seed"] for p in chunk]))
    else:
        images = [generate_fn(p["prompt"], p["seed"]) for p in prompts]
    correct = dict.fromkeys(KEYS, 0)
    scored = dict.fromkeys(KEYS, 0)
    rows = []
    for k, (p, img) in enumerate(zip(prompts, images, strict=False)):
        j = judge(img)
        got = {"color": j.color, "background": j.background, "shape": j.shape, "position": j.position}
        for key in KEYS:
            if p[key] is not None:
                scored[key] += 1
                correct[key] += got[key] == p[key]
        rows.append({"prompt": p["prompt"], "seed": p["seed"], "got": got})
        if save_dir is not None:
            Path(save_dir).mkdir(parents=True, exist_ok=True)
            img.save(Path(save_dir) / f"{k:02d}.png")
    accuracies = {key: correct[key] / scored[key] if scored[key] else None for key in KEYS}
    return {**accuracies, "n": len(prompts), "n_position": scored["position"], "rows": rows}


def load_pipeline(model_dir: str | Path = MODEL_DIR, text_encoder_dir: str | Path | None = None):
    """diffusers' pipeline on the folder; ``text_encoder_dir``: another text encoder (a
    ``train_text_encoder`` checkpoint) in place of the folder's."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(
        str(model_dir),
        local_files_only=True,
        safety_checker=None,
        feature_extractor=None,
        torch_dtype=torch.float32,
    )
    if text_encoder_dir is not None:
        from transformers import CLIPTextModel

        pipe.text_encoder = CLIPTextModel.from_pretrained(str(text_encoder_dir), torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def pipeline_batch_fn(
    pipe,
    cfg: float = DEFAULT_CFG,
    steps: int = DEFAULT_STEPS,
    late_cfg: float | None = None,
    late_cfg_start: float = 0.5,
):
    """Batches through diffusers' own pipeline. ``late_cfg``: the CFG scale from step
    ``round(late_cfg_start * steps)`` on (what Easel's request.late_cfg_* do), switched
    with diffusers' step-end callback."""
    first_late = round(late_cfg_start * steps)

    def switch_cfg(p, index, timestep, tensors):
        if index + 1 >= first_late:
            # the batch stays [uncond, cond]: a scale of exactly 1 would make the
            # pipeline drop the uncond half of the embeddings but not of the latents
            p._guidance_scale = late_cfg if late_cfg != 1.0 else 1.0 + 1e-9
        return {}

    def gen(prompts, seeds):
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        return pipe(
            list(prompts),
            generator=gens,
            num_inference_steps=steps,
            guidance_scale=cfg,
            height=IMAGE_SIZE,
            width=IMAGE_SIZE,
            callback_on_step_end=switch_cfg if late_cfg is not None else None,
        ).images

    return gen


def recommended_batch_fn(
    pipe,
    model_dir: str | Path = MODEL_DIR,
    cfg: float | None = None,
    steps: int | None = None,
    late_cfg: float | None = None,
    late_cfg_start: float | None = None,
    no_late_cfg: bool = False,
):
    """``pipeline_batch_fn`` with the folder's easel.json filling what is not given (as
    Easel fills a request); the folder's scheduler is the recommended sampler (Euler)."""
    settings = read_recommended(Path(model_dir))  # Easel's own reader (and checks)
    return pipeline_batch_fn(
        pipe,
        cfg=first(cfg, settings.get("cfg_scale"), DEFAULT_CFG),
        steps=first(steps, settings.get("steps"), DEFAULT_STEPS),
        late_cfg=None if no_late_cfg else first(late_cfg, settings.get("late_cfg_scale")),
        late_cfg_start=first(late_cfg_start, settings.get("late_cfg_start"), 0.5),
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(MODEL_DIR))
    ap.add_argument("--cfg", type=float, default=None, help="default: the model's easel.json, else 6")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--late-cfg", type=float, default=None, help="default: the model's easel.json")
    ap.add_argument("--late-cfg-start", type=float, default=None)
    ap.add_argument("--no-late-cfg", action="store_true", help="one CFG scale throughout")
    ap.add_argument(
        "--validation", action="store_true", help="the 96 validation prompts, not the held-out 48"
    )
    ap.add_argument(
        "--phrasings",
        action="store_true",
        help="the 64 held-out phrasings (phrasings.py), not the held-out 48",
    )
    ap.add_argument("--text-encoder", default=None, help="a text encoder folder in place of the model's")
    ap.add_argument("--save-dir", default=None)
    ap.add_argument("--prompt", default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="sample.png")
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    if args.validation and args.phrasings:
        ap.error("--validation and --phrasings are two prompt sets; give one")
    pipe = load_pipeline(args.model, args.text_encoder)
    gen = recommended_batch_fn(
        pipe,
        args.model,
        cfg=args.cfg,
        steps=args.steps,
        late_cfg=args.late_cfg,
        late_cfg_start=args.late_cfg_start,
        no_late_cfg=args.no_late_cfg,
    )
    if args.prompt:
        img = gen([args.prompt], [args.seed])[0]
        img.save(args.out)
        print(json.dumps({"prompt": args.prompt, "seed": args.seed, **judge(img).as_dict()}))
        return
    if args.bench:
        prompts = ["a red circle on a blue background"] * 4
        gen(prompts, [1, 2, 3, 4])  # warm-up
        times = []
        for _ in range(3):
            t = time.time()
            gen(prompts, [1, 2, 3, 4])
            times.append(time.time() - t)
        print(
            json.dumps(
                {
                    "batch": 4,
                    "size": IMAGE_SIZE,
                    "steps": args.steps,
                    "seconds": [round(x, 3) for x in times],
                    "threads": torch.get_num_threads(),
                }
            )
        )
        return
    t = time.time()
    res = evaluate(
        generate_batch_fn=gen,
        save_dir=args.save_dir,
        prompts=validation_prompts() if args.validation else phrasing_prompts() if args.phrasings else None,
    )
    res["seconds"] = round(time.time() - t, 1)
    if args.verbose:
        for r in res["rows"]:
            print(r)
    rows = res.pop("rows")
    if args.phrasings:
        res["per_template"] = per_template(rows, phrasing_prompts())
    print(json.dumps(res))


def per_template(rows: list[dict], prompts: list[dict]) -> dict:
    """Template -> the prompts of it judged right on every scored attribute, as "k/n"."""
    right: dict[str, list[int]] = {}
    for row, p in zip(rows, prompts, strict=True):
        ok = all(row["got"][key] == p[key] for key in KEYS if p[key] is not None)
        right.setdefault(p["template"], []).append(int(ok))
    return {template: f"{sum(v)}/{len(v)}" for template, v in right.items()}


def first(*values):
    """The first value that is not None."""
    return next((v for v in values if v is not None), None)


if __name__ == "__main__":
    main()
