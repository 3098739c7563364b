"""Measure the demo LoRA through Easel itself: how often the analyzer sees outlines.

    python -m tools.demo_lora.evaluate                       # the shipped models/Lora/easel-outline
    python -m tools.demo_lora.evaluate --lora /tmp/x.safetensors --save-dir /tmp/eval

Generates ``EVAL_PROMPTS`` (fixed seeds) with the real engine and the bundled LoRA extension
on the demo model (128x128, 20 Euler steps, CFG 6) three ways: without LoRA, with
``<lora:NAME:1>`` and with ``<lora:NAME:0>``, and prints one JSON object: the outline rate of
each (``analyze.outline_rate``), whether weight 0 was bit-identical to the base, and the
per-image hole fractions.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from tools.demo_lora.analyze import analyze
from tools.demo_model.common import DEFAULT_CFG, DEFAULT_STEPS, IMAGE_SIZE, MODEL_DIR, REPO_ROOT

LORA_NAME = "easel-outline"
SHIPPED_LORA = REPO_ROOT / "models" / "Lora" / f"{LORA_NAME}.safetensors"
# high-contrast colour pairs, every shape twice, each with a fixed seed
EVAL_PROMPTS: list[tuple[str, int]] = [
    ("a yellow circle on a black background", 1),
    ("a white square on a blue background", 2),
    ("a red star on a white background", 3),
    ("an orange triangle on a purple background", 4),
    ("a large green circle on a yellow background", 5),
    ("a black square in the center, white background", 6),
    ("a large yellow star on a blue background", 7),
    ("a white triangle on a red background", 8),
]


def models_folder(root: Path, lora_file: Path, base: Path = MODEL_DIR) -> Path:
    """An A1111 models folder under ``root`` with the base model and one LoRA (links)."""
    (root / "Stable-diffusion").mkdir(parents=True, exist_ok=True)
    (root / "Lora").mkdir(exist_ok=True)
    (root / "Stable-diffusion" / "easel-demo").symlink_to(base.resolve(), target_is_directory=True)
    (root / "Lora" / f"{LORA_NAME}.safetensors").symlink_to(lora_file.resolve())
    return root


def make_engine(models_dir: Path, data_dir: Path) -> Any:
    from core.config import Settings
    from core.engine import Engine
    from core.host import Host

    host = Host(Settings(models_dir=models_dir, data_dir=data_dir, device="cpu")).start()
    return Engine(host)


def generate(engine: Any, prompt: str, seed: int) -> tuple[np.ndarray, Any]:
    from plugin_api.types import GenerationRequest

    request = GenerationRequest(
        prompt=prompt, seed=seed, steps=DEFAULT_STEPS, cfg_scale=DEFAULT_CFG, width=IMAGE_SIZE,
        height=IMAGE_SIZE, sampler="Euler", model="easel-demo", save_images=False,
    )  # fmt: skip
    result = engine.generate(request)
    return np.asarray(result.images[0]), result


def evaluate(
    engine: Any,
    prompts: list[tuple[str, int]] = EVAL_PROMPTS,
    save_dir: Path | None = None,
    identity_checks: int | None = None,
) -> dict:
    """Outline rates without and with the LoRA; for the first ``identity_checks`` prompts
    (all by default) also weight 0 and LoRA-off against the base image, bit for bit."""
    rows = []
    base_images = [generate(engine, p, s)[0] for p, s in prompts]  # before any LoRA is loaded
    checks = len(prompts) if identity_checks is None else identity_checks
    for index, ((prompt, seed), base) in enumerate(zip(prompts, base_images, strict=True)):
        styled, result = generate(engine, f"{prompt} <lora:{LORA_NAME}:1>", seed)
        if result.warnings:
            raise RuntimeError(f"the LoRA did not apply: {result.warnings}")
        row = {
            "prompt": prompt,
            "seed": seed,
            "base": analyze(base).as_dict(),
            "lora": analyze(styled).as_dict(),
            "lora_hashes": "Lora hashes" in result.infotexts[0],
        }
        if index < checks:
            zero, _ = generate(engine, f"{prompt} <lora:{LORA_NAME}:0>", seed)
            plain, _ = generate(engine, prompt, seed)
            row["weight0_identical"] = bool(np.array_equal(zero, base))
            row["off_identical"] = bool(np.array_equal(plain, base))
        rows.append(row)
        if save_dir is not None:
            from PIL import Image

            save_dir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.concatenate([base, styled], axis=1)).save(save_dir / f"{seed:02d}.png")
    n = len(rows)
    return {
        "n": n,
        "outline_rate_base": sum(r["base"]["style"] == "outline" for r in rows) / n,
        "outline_rate_lora": sum(r["lora"]["style"] == "outline" for r in rows) / n,
        "identity_checks": checks,
        "weight0_identical": all(r.get("weight0_identical", True) for r in rows),
        "off_identical": all(r.get("off_identical", True) for r in rows),
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lora", type=Path, default=SHIPPED_LORA)
    ap.add_argument("--base", type=Path, default=MODEL_DIR)
    ap.add_argument("--save-dir", type=Path, help="write base|LoRA image pairs here")
    args = ap.parse_args(argv)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="easel-lora-eval-") as scratch:
        root = Path(scratch)
        engine = make_engine(models_folder(root / "models", args.lora, args.base), root / "data")
        report = evaluate(engine, save_dir=args.save_dir)
    report["wall_s"] = round(time.time() - started, 1)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
