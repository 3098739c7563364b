"""FLUX.1 ControlNets (diffusers' ``FluxControlNetModel``): files, loading and residuals.

What runs is what diffusers' ``FluxControlNetPipeline`` runs:

- the control map in [-1, 1], encoded by the model's own VAE (``(z - shift) * scale``)
  and packed into 2x2 patches like the latents; a ControlNet with its own
  ``input_hint_block`` (XLabs' design, as diffusers converts it) takes the pixels;
- every step, each unit whose [start, end] holds the step's fraction runs on the
  latents of the images with the positive prompt (pooled CLIP, T5, Distilled CFG) and
  gives ``controlnet_block_samples`` / ``controlnet_single_block_samples``, scaled by its
  weight (``controlnet_conditioning_scale``); several units add up as
  ``FluxMultiControlNetModel`` adds them. With real CFG (scale > 1) the negative half of
  the batch gets the same samples, as the pipeline passes them to both calls;
- a Union ControlNet (``num_mode`` in its config: InstantX's, Shakker-Labs' Union Pro)
  takes a ``control_mode`` index, from the unit's ``union_control_type`` or guessed from
  its preprocessor.

Files: a diffusers folder (``config.json`` with ``FluxControlNetModel``), or a single
``.safetensors`` in diffusers' key layout (InstantX's and Shakker-Labs'
``diffusion_pytorch_model.safetensors`` saved under another name): its config is read from
the tensor shapes and the loaded transformer (the RoPE axes). XLabs' own single files
(BFL key names: ``double_blocks.*``, ``pos_embed_input``) are listed as Flux but refused:
diffusers has no loader for them either.

sd-webui-controlnet's control modes are SD-UNet ideas (a per-block weight ladder, and
residuals on the CFG's conditional half only); a Flux transformer has no such blocks, so
"My prompt is more important" / "ControlNet is more important" are ignored with a warning
and the unit runs "Balanced".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

FLUX = "flux"
DEFAULT_DISTILLED_CFG = 3.5  # a ControlNet with a guidance embedding on schnell: diffusers' default
# config keys whose values must equal the transformer's for the samples to fit
FIT_KEYS = ("in_channels", "joint_attention_dim", "pooled_projection_dim")
# InstantX's and Shakker-Labs' Union ControlNets (their model cards): mode index by name
UNION_MODES = {"canny": 0, "tile": 1, "depth": 2, "blur": 3, "pose": 4, "gray": 5, "low quality": 6}
UNION_ALIASES = {
    "openpose": "pose",
    "grayscale": "gray",
    "lq": "low quality",
    "lowquality": "low quality",
    "low_quality": "low quality",
}
# a preprocessor's name -> the Union mode it makes (when the unit names none)
PREPROCESSOR_MODES = (
    ("canny", "canny"),
    ("tile", "tile"),
    ("depth", "depth"),
    ("blur", "blur"),
    ("openpose", "pose"),
    ("dw_openpose", "pose"),
    ("gray", "gray"),
)


class FluxControlNetError(ValueError):
    """A Flux ControlNet that cannot be used (the message names the file and why)."""


# --- files ------------------------------------------------------------------------------


def layout(keys: Any) -> str | None:
    """ "diffusers" or "xlabs" for a Flux ControlNet's tensor names, None for anything else.

    diffusers' layout has the transformer's embedders beside ``controlnet_x_embedder``
    (Qwen-Image's ControlNet has ``img_in`` instead, SD3's ``pos_embed_input.proj``);
    XLabs' has BFL's ``double_blocks`` with ``pos_embed_input`` and ``input_hint_block``."""
    names = set(keys)
    if {"x_embedder.weight", "context_embedder.weight", "controlnet_x_embedder.weight"} <= names:
        return "diffusers"
    if {"pos_embed_input.weight", "input_hint_block.0.weight"} <= names and any(
        k.startswith("double_blocks.") for k in names
    ):
        return "xlabs"
    return None


def xlabs_problem(path: Any) -> str:
    return (
        f"{path} is an XLabs FLUX.1 ControlNet in XLabs' own key layout (double_blocks, "
        "pos_embed_input); Easel reads Flux ControlNets in diffusers' layout only (a folder "
        "with config.json, or InstantX/Shakker-Labs' diffusion_pytorch_model.safetensors): "
        "use the ControlNet's diffusers conversion"
    )


def num_mode(shapes: dict[str, list[int]]) -> int | None:
    """A Union ControlNet's number of modes (its mode embedding's rows), else None."""
    shape = shapes.get("controlnet_mode_embedder.weight")
    return int(shape[0]) if shape else None


def _count(shapes: dict[str, list[int]], prefix: str) -> int:
    return len({k[len(prefix) :].split(".")[0] for k in shapes if k.startswith(prefix)})


def config_from_shapes(path: Any, shapes: dict[str, list[int]], transformer_config: Any) -> dict[str, Any]:
    """A FluxControlNetModel config for a single file in diffusers' layout: the sizes read
    from its tensors, the RoPE axes (no tensor holds them) from the loaded transformer."""
    try:
        inner, in_channels = shapes["x_embedder.weight"]
        head_dim = shapes["transformer_blocks.0.attn.norm_q.weight"][0]
        config: dict[str, Any] = {
            "patch_size": 1,
            "in_channels": in_channels,
            "num_layers": _count(shapes, "transformer_blocks."),
            "num_single_layers": _count(shapes, "single_transformer_blocks."),
            "attention_head_dim": head_dim,
            "num_attention_heads": inner // head_dim,
            "joint_attention_dim": shapes["context_embedder.weight"][1],
            "pooled_projection_dim": shapes["time_text_embed.text_embedder.linear_1.weight"][1],
            "guidance_embeds": "time_text_embed.guidance_embedder.linear_1.weight" in shapes,
            "axes_dims_rope": list(transformer_config.get("axes_dims_rope", (16, 56, 56))),
        }
    except (KeyError, IndexError, ValueError) as exc:
        raise FluxControlNetError(f"{path}: not a complete FLUX.1 ControlNet (missing {exc})") from exc
    if num_mode(shapes) is not None:
        config["num_mode"] = num_mode(shapes)
    if "input_hint_block.conv_out.weight" in shapes:
        channels = shapes["input_hint_block.conv_out.weight"][0]
        config["conditioning_embedding_channels"] = channels
        # the hint's channels are patched into the latents' width (XLabs: 16 x 2 x 2 = 64)
        config["patch_size"] = max(1, math.isqrt(in_channels // max(1, channels)))
    return config


def check_fits(path: Any, config: dict[str, Any], transformer_config: Any) -> None:
    """Raise when the ControlNet's samples cannot be added to the transformer's blocks."""
    different = []
    mine = int(config.get("num_attention_heads", 0)) * int(config.get("attention_head_dim", 0))
    theirs = int(transformer_config.get("num_attention_heads", 0)) * int(
        transformer_config.get("attention_head_dim", 0)
    )
    if mine != theirs:
        different.append(f"hidden size {mine} vs the model's {theirs}")
    for key in FIT_KEYS:
        a, b = config.get(key), transformer_config.get(key)
        if a is not None and b is not None and a != b:
            different.append(f"{key} {a} vs the model's {b}")
    if different:
        raise FluxControlNetError(f"{path} does not fit the loaded FLUX.1 model: " + "; ".join(different))


def load(info: Any, transformer: Any) -> Any:
    """The FluxControlNetModel of ``info`` (folder or single file), checked against the
    loaded transformer. Raises FluxControlNetError naming the file."""
    from diffusers import FluxControlNetModel

    transformer_config = dict(transformer.config)
    if info.format == "diffusers":
        try:
            model = FluxControlNetModel.from_pretrained(str(info.path), local_files_only=True)
        except Exception as exc:
            raise FluxControlNetError(f"{info.path}: cannot load: {type(exc).__name__}: {exc}") from exc
        check_fits(info.path, dict(model.config), transformer_config)
        return model
    from safetensors.torch import load_file

    try:
        state = load_file(str(info.path))
    except Exception as exc:
        raise FluxControlNetError(f"{info.path}: cannot read: {type(exc).__name__}: {exc}") from exc
    if layout(state) == "xlabs":
        raise FluxControlNetError(xlabs_problem(info.path))
    config = config_from_shapes(info.path, {k: list(v.shape) for k, v in state.items()}, transformer_config)
    check_fits(info.path, config, transformer_config)
    model = FluxControlNetModel.from_config(config)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        first = " ".join(str(exc).split("\n")[1:2]).strip()
        raise FluxControlNetError(f"{info.path}: its tensors do not fit its own shapes: {first}") from exc
    if result.missing_keys or result.unexpected_keys:
        raise FluxControlNetError(
            f"{info.path}: not a FLUX.1 ControlNet in diffusers' layout: {len(result.missing_keys)} "
            f"missing weights (e.g. {result.missing_keys[:2]}), {len(result.unexpected_keys)} "
            f"unexpected (e.g. {result.unexpected_keys[:2]})"
        )
    return model


# --- a unit, prepared -------------------------------------------------------------------


@dataclass
class FluxPreparedUnit:
    unit: Any  # ControlUnit
    model: Any  # FluxControlNetModel on the model's device and compute dtype
    control_image: Image.Image  # the preprocessed map at the generation size
    mode: int | None  # the Union control mode, None for a single-purpose ControlNet
    repeat: bool  # XLabs-style: samples repeat over the transformer's blocks
    vae: Any
    device: Any
    # the ControlNet's input by latent size (H, W): the generation's, and the hires pass's
    # (its latents are larger; the map is resized to them, as sd-webui-controlnet does)
    controls: dict[tuple[int, int], torch.Tensor] = field(default_factory=dict)

    def control(self, height: int, width: int) -> torch.Tensor:
        """(1, tokens, channels) packed latents, or (1, 3, H, W) pixels for a hint block."""
        if (height, width) not in self.controls:
            factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
            image = self.control_image
            if image.size != (width * factor, height * factor):
                image = image.resize((width * factor, height * factor), Image.Resampling.LANCZOS)
            self.controls[(height, width)] = control_input(image, self.model, self.vae, self.device)
        return self.controls[(height, width)]


def union_mode(unit: Any, num_mode: int | None, warnings: list[str]) -> int | None:
    """The unit's Union control mode index (None when the ControlNet is not a Union one).
    Raises ValueError (the caller names the field) when it cannot be told."""
    wanted = getattr(unit, "union_control_type", None)
    if num_mode is None:
        if wanted is not None:
            warnings.append(
                f"ControlNet {unit.index}: {unit.model!r} is not a Union ControlNet; "
                f"union_control_type {wanted!r} is ignored"
            )
        return None
    names = [n for n, i in sorted(UNION_MODES.items(), key=lambda kv: kv[1]) if i < num_mode]
    choices = ", ".join(f"{i} {n!r}" for i, n in enumerate(names))
    if wanted is None:
        module = str(unit.preprocessor).lower()
        guessed = next((mode for prefix, mode in PREPROCESSOR_MODES if module.startswith(prefix)), None)
        if guessed is None or UNION_MODES[guessed] >= num_mode:
            raise ValueError(
                f"{unit.model!r} is a Union ControlNet: say which control it gets in "
                f"union_control_type ({choices}); it cannot be told from the preprocessor "
                f"{unit.preprocessor!r}"
            )
        return UNION_MODES[guessed]
    text = str(wanted).strip().lower()
    if text.isdigit():
        index = int(text)
    else:
        index = UNION_MODES.get(UNION_ALIASES.get(text, text), -1)
    if not 0 <= index < num_mode:
        raise ValueError(f"unknown union_control_type {wanted!r} for {unit.model!r}; use {choices}")
    return index


def pack(latents: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H/2 * W/2, C * 4): FluxPipeline's 2x2 patches."""
    b, c, h, w = latents.shape
    latents = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return latents.reshape(b, (h // 2) * (w // 2), c * 4)


def image_ids(height: int, width: int, device: Any, dtype: Any) -> torch.Tensor:
    """Positions of the packed latent patches (FluxPipeline._prepare_latent_image_ids)."""
    ids = torch.zeros(height // 2, width // 2, 3)
    ids[..., 1] = ids[..., 1] + torch.arange(height // 2)[:, None]
    ids[..., 2] = ids[..., 2] + torch.arange(width // 2)[None, :]
    return ids.reshape(-1, 3).to(device=device, dtype=dtype)


def control_input(image: Image.Image, model: Any, vae: Any, device: Any) -> torch.Tensor:
    """The map as the ControlNet takes it: pixels in [-1, 1] for a hint block, else the
    VAE's posterior mean, shifted, scaled and packed (deterministic: the seed does not
    change the control; diffusers samples the posterior, whose spread is tiny)."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    pixels = torch.from_numpy(array).permute(2, 0, 1)[None].to(device)
    if model.input_hint_block is not None:
        return pixels.to(model.dtype)
    with torch.no_grad():
        latents = vae.encode(pixels.to(vae.dtype)).latent_dist.mean
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    latents = (latents - shift) * vae.config.scaling_factor
    return pack(latents).to(model.dtype)


# --- every step ---------------------------------------------------------------------------


def samples(
    prepared: list[FluxPreparedUnit],
    fraction: float,
    latents: torch.Tensor,
    timestep: float,
    inputs: dict[str, Any],
    transformer_config: Any,
) -> dict[str, Any] | None:
    """The summed block samples of the units that apply at ``fraction``, or None."""
    active = [p for p in prepared if p.unit.applies_at(fraction)]
    if not active:
        return None
    cfg_batch = bool(inputs.get("cfg_batch"))
    hidden = inputs["encoder_hidden_states"]
    extra = inputs.get("added_cond_kwargs") or {}
    # the ControlNet runs with the positive prompt only (FluxControlNetPipeline does)
    cond = (lambda t: t.chunk(2)[1]) if cfg_batch else (lambda t: t)
    x = cond(latents)
    batch, _, height, width = x.shape
    outputs = []
    for item in active:
        model = item.model
        dtype = model.dtype
        guidance = None
        if model.config.guidance_embeds:
            given = extra.get("guidance")
            guidance = (
                cond(given).to(x.device, torch.float32)
                if given is not None
                else torch.full([batch], DEFAULT_DISTILLED_CFG, device=x.device)
            )
        control = item.control(height, width)
        control = control.expand(batch, *control.shape[1:])
        mode = None
        if item.mode is not None:
            mode = torch.full((batch, 1), item.mode, dtype=torch.long, device=x.device)
        t = torch.full((batch,), float(timestep), device=x.device, dtype=dtype) / 1000
        double, single = model(
            hidden_states=pack(x).to(dtype),
            controlnet_cond=control,
            controlnet_mode=mode,
            conditioning_scale=item.unit.weight,
            encoder_hidden_states=cond(hidden).to(dtype),
            pooled_projections=cond(extra["pooled"]).to(dtype),
            timestep=t,
            img_ids=image_ids(height, width, x.device, dtype),
            txt_ids=torch.zeros(hidden.shape[1], 3, device=x.device, dtype=dtype),
            guidance=guidance,
            return_dict=False,
        )
        outputs.append((double, single, item.repeat))
    double = _combine([(d, r) for d, _, r in outputs], int(transformer_config.get("num_layers", 0)))
    single = _combine(
        [(s, False) for _, s, _ in outputs], int(transformer_config.get("num_single_layers", 0))
    )
    result: dict[str, Any] = {}
    if double is not None:
        result["controlnet_block_samples"] = [torch.cat([s, s]) for s in double] if cfg_batch else double
    if single is not None:
        result["controlnet_single_block_samples"] = (
            [torch.cat([s, s]) for s in single] if cfg_batch else single
        )
    return result or None


def _combine(lists: list[tuple[Any, bool]], blocks: int) -> list[torch.Tensor] | None:
    """One list of samples from several ControlNets' lists. Lists of one length (none
    repeating) add element-wise, as FluxMultiControlNetModel adds them; otherwise each is
    first spread over the transformer's ``blocks`` the way the transformer reads it
    (sample ``i // ceil(blocks / n)``, or ``i % n`` for XLabs-style repeating ones)."""
    present = [(s, r) for s, r in lists if s is not None]
    if not present:
        return None
    lengths = {len(s) for s, _ in present}
    if len(present) == 1 and not present[0][1]:
        return list(present[0][0])
    if len(lengths) == 1 and not any(r for _, r in present):
        return [sum(group[1:], group[0]) for group in zip(*(s for s, _ in present), strict=True)]
    spread = [_spread(list(s), blocks, r) for s, r in present]
    return [sum(group[1:], group[0]) for group in zip(*spread, strict=True)]


def _spread(samples: list[torch.Tensor], blocks: int, repeat: bool) -> list[torch.Tensor]:
    if repeat:
        return [samples[i % len(samples)] for i in range(blocks)]
    interval = math.ceil(blocks / len(samples))
    return [samples[i // interval] for i in range(blocks)]
