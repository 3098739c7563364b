"""Assemble a diffusers StableDiffusionPipeline folder from trained components.

    python -m tools.demo_model.export --ckpt /tmp/easel-demo-work/ckpt/final --out models/Stable-diffusion/easel-demo

``--ckpt`` is a folder written by train_unet (unet/, text_encoder/, vae/ in fp32); the
export converts every weight to fp16 safetensors and adds tokenizer + scheduler configs.

    python -m tools.demo_model.export --text-encoder /tmp/easel-demo-work/te_ckpt/step_N

replaces only the folder's ``text_encoder/`` (fp16 safetensors, same config) with a
``train_text_encoder`` checkpoint and leaves everything else as it is.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from .common import MODEL_DIR, NATIVE_SIZES, RECOMMENDED, SCHEDULER_CONFIG, TOKENIZER_DIR

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
    """easel.json: the native size and the sampling settings Easel uses when a request
    leaves them empty."""
    settings = {"sizes": NATIVE_SIZES, "recommended": RECOMMENDED}
    (Path(out) / "easel.json").write_text(json.dumps(settings, indent=2) + "\n")


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


def replace_text_encoder(model_dir: Path, checkpoint: Path) -> None:
    """Write ``checkpoint`` (a CLIPTextModel folder) as ``model_dir``/text_encoder in fp16
    safetensors; the config must be the folder's own (same architecture)."""
    from transformers import CLIPTextModel

    text = CLIPTextModel.from_pretrained(checkpoint, torch_dtype=torch.float32)
    old = CLIPTextModel.config_class.from_pretrained(model_dir / "text_encoder")
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size"):
        if getattr(text.config, key) != getattr(old, key):
            raise ValueError(f"{checkpoint}: {key} {getattr(text.config, key)} != {getattr(old, key)}")
    shutil.rmtree(model_dir / "text_encoder")
    text.half().save_pretrained(model_dir / "text_encoder", safe_serialization=True)
    print(f"replaced {model_dir / 'text_encoder'} with {checkpoint}")


def folder_size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", help="a train_unet checkpoint folder: the whole model")
    ap.add_argument("--text-encoder", help="a train_text_encoder checkpoint: only text_encoder/")
    ap.add_argument("--out", default=str(MODEL_DIR))
    ap.add_argument(
        "--vae",
        default=None,
        help="VAE folder whose decoder replaces the checkpoint's (same frozen encoder, "
        "e.g. from train_vae --decoder-only); the checkpoint's scaling_factor is kept",
    )
    args = ap.parse_args()
    if bool(args.ckpt) == bool(args.text_encoder):
        ap.error("give one of --ckpt (the whole model) and --text-encoder (only the encoder)")
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    if args.text_encoder:
        replace_text_encoder(Path(args.out), Path(args.text_encoder))
        return

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
