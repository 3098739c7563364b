"""Assemble a diffusers StableDiffusionPipeline folder from trained components.

    python -m tools.demo_model.export --ckpt /tmp/easel-demo-work/ckpt/final --out models/Stable-diffusion/easel-demo

``--ckpt`` is a folder written by train_unet (unet/, text_encoder/, vae/ in fp32); the
export converts every weight to fp16 safetensors and adds tokenizer + scheduler configs.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from .common import MODEL_DIR, RECOMMENDED, SCHEDULER_CONFIG, TOKENIZER_DIR

TOKENIZER_CONFIG = {
    "add_prefix_space": False,
    "bos_token": "<|startoftext|>",
    "clean_up_tokenization_spaces": True,
    "do_lower_case": True,
    "eos_token": "<|endoftext|>",
    "errors": "replace",
    "model_max_length": 77,
    "pad_token": "<|endoftext|>",
    "tokenizer_class": "CLIPTokenizer",
    "unk_token": "<|endoftext|>",
}
SPECIAL_TOKENS_MAP = {
    "bos_token": "<|startoftext|>",
    "eos_token": "<|endoftext|>",
    "pad_token": "<|endoftext|>",
    "unk_token": "<|endoftext|>",
}
MODEL_INDEX = {
    "_class_name": "StableDiffusionPipeline",
    "_diffusers_version": "0.42.1",
    "feature_extractor": [None, None],
    "image_encoder": [None, None],
    "requires_safety_checker": False,
    "safety_checker": [None, None],
    "scheduler": ["diffusers", "EulerDiscreteScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}


def write_static_parts(out: Path, scheduler_config: dict | None = None) -> None:
    """tokenizer/, scheduler/ and model_index.json."""
    tok = out / "tokenizer"
    tok.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(TOKENIZER_DIR / name, tok / name)
    (tok / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG, indent=2) + "\n")
    (tok / "special_tokens_map.json").write_text(json.dumps(SPECIAL_TOKENS_MAP, indent=2) + "\n")
    from diffusers import EulerDiscreteScheduler

    EulerDiscreteScheduler(**(scheduler_config or SCHEDULER_CONFIG)).save_pretrained(out / "scheduler")
    (out / "model_index.json").write_text(json.dumps(MODEL_INDEX, indent=2) + "\n")
    write_recommended(out)


def write_recommended(out: Path) -> None:
    """easel.json: the sampling settings Easel uses when a request leaves them empty."""
    (Path(out) / "easel.json").write_text(json.dumps({"recommended": RECOMMENDED}, indent=2) + "\n")


def save_components(
    out: Path, unet, text_encoder, vae, fp16: bool, scheduler_config: dict | None = None
) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, model in (("unet", unet), ("text_encoder", text_encoder), ("vae", vae)):
        m = model
        if fp16:
            import copy

            m = copy.deepcopy(model).half()
        m.save_pretrained(out / name, safe_serialization=True)
    write_static_parts(out, scheduler_config)


def folder_size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--out", default=str(MODEL_DIR))
    ap.add_argument(
        "--vae",
        default=None,
        help="VAE folder whose decoder replaces the checkpoint's (same frozen encoder, "
        "e.g. from train_vae --decoder-only); the checkpoint's scaling_factor is kept",
    )
    args = ap.parse_args()
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    ck = Path(args.ckpt)
    unet = UNet2DConditionModel.from_pretrained(ck / "unet", torch_dtype=torch.float32)
    text = CLIPTextModel.from_pretrained(ck / "text_encoder", torch_dtype=torch.float32)
    vae = AutoencoderKL.from_pretrained(ck / "vae", torch_dtype=torch.float32)
    if args.vae:
        dec = AutoencoderKL.from_pretrained(args.vae, torch_dtype=torch.float32)
        for name in ("encoder", "quant_conv"):  # must be identical, else the latent space moved
            for (k, a), b in zip(
                getattr(vae, name).state_dict().items(),
                getattr(dec, name).state_dict().values(),
                strict=False,
            ):
                assert torch.equal(a, b), f"{name}.{k} differs: not the same encoder"
        vae.decoder.load_state_dict(dec.decoder.state_dict())
        vae.post_quant_conv.load_state_dict(dec.post_quant_conv.state_dict())
    # the schedule the checkpoint was trained with (train_unet writes it)
    from diffusers import EulerDiscreteScheduler

    scheduler = (
        EulerDiscreteScheduler.load_config(str(ck / "scheduler")) if (ck / "scheduler").is_dir() else None
    )
    scheduler = {k: v for k, v in scheduler.items() if not k.startswith("_")} if scheduler else None
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    save_components(out, unet, text, vae, fp16=True, scheduler_config=scheduler)
    print(f"exported {out} ({folder_size_mb(out):.2f} MB)")


if __name__ == "__main__":
    main()
