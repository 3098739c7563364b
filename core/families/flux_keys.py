"""BFL's original FLUX.1 / Chroma tensor names -> diffusers' ``FluxTransformer2DModel`` /
``ChromaTransformer2DModel`` names (Chroma: FLUX.1's blocks without their modulation
layers, plus the ``distilled_guidance_layer`` approximator).

diffusers' own converter (``convert_flux_transformer_checkpoint_to_diffusers``) fixes the
width at FLUX.1's 3072, so it cannot read a file of another size (the tests' tiny models,
distillations); this one takes the sizes from the tensors: a fused ``qkv`` is three equal
parts, a single block's ``linear1`` is q, k, v (the model width each) then the MLP input.
Splitting is along the rows, so GGUF tensors (quantised along each row) split the same way,
as diffusers' converter splits them. diffusers then loads the result as it is.
"""

from __future__ import annotations

import re
from typing import Any

import torch

DIRECT = {
    "time_in.in_layer.": "time_text_embed.timestep_embedder.linear_1.",
    "time_in.out_layer.": "time_text_embed.timestep_embedder.linear_2.",
    "vector_in.in_layer.": "time_text_embed.text_embedder.linear_1.",
    "vector_in.out_layer.": "time_text_embed.text_embedder.linear_2.",
    "guidance_in.in_layer.": "time_text_embed.guidance_embedder.linear_1.",
    "guidance_in.out_layer.": "time_text_embed.guidance_embedder.linear_2.",
    "txt_in.": "context_embedder.",
    "img_in.": "x_embedder.",
    "final_layer.linear.": "proj_out.",
    # Chroma: the guidance/timestep approximator replaces the modulation inputs
    "distilled_guidance_layer.in_proj.": "distilled_guidance_layer.in_proj.",
    "distilled_guidance_layer.out_proj.": "distilled_guidance_layer.out_proj.",
}
DOUBLE = {
    "img_mod.lin.": "norm1.linear.",
    "txt_mod.lin.": "norm1_context.linear.",
    "img_attn.norm.query_norm.scale": "attn.norm_q.weight",
    "img_attn.norm.key_norm.scale": "attn.norm_k.weight",
    "txt_attn.norm.query_norm.scale": "attn.norm_added_q.weight",
    "txt_attn.norm.key_norm.scale": "attn.norm_added_k.weight",
    "img_mlp.0.": "ff.net.0.proj.",
    "img_mlp.2.": "ff.net.2.",
    "txt_mlp.0.": "ff_context.net.0.proj.",
    "txt_mlp.2.": "ff_context.net.2.",
    "img_attn.proj.": "attn.to_out.0.",
    "txt_attn.proj.": "attn.to_add_out.",
}
SINGLE = {
    "modulation.lin.": "norm.linear.",
    "linear2.": "proj_out.",
    "norm.query_norm.scale": "attn.norm_q.weight",
    "norm.key_norm.scale": "attn.norm_k.weight",
}


def _rename(rest: str, table: dict[str, str]) -> str | None:
    for theirs, ours in table.items():
        if rest.startswith(theirs):
            return ours + rest.removeprefix(theirs)
    return None


def _split(tensor: Any, sizes: list[int]) -> list[Any]:
    return list(torch.split(tensor, sizes, dim=0))


def bfl_to_diffusers(state: dict[str, Any], inner_dim: int) -> dict[str, Any]:
    """The converted state dict; a key this mapping does not know raises KeyError naming it."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        if m := re.match(r"double_blocks\.(\d+)\.(.+)$", key):
            block, rest = f"transformer_blocks.{m[1]}.", m[2]
            if qkv := re.match(r"(img|txt)_attn\.qkv\.(weight|bias)$", rest):
                names = (
                    ("to_q", "to_k", "to_v")
                    if qkv[1] == "img"
                    else ("add_q_proj", "add_k_proj", "add_v_proj")
                )
                for name, part in zip(names, _split(value, [inner_dim] * 3), strict=True):
                    out[f"{block}attn.{name}.{qkv[2]}"] = part
                continue
            renamed = _rename(rest, DOUBLE)
        elif m := re.match(r"single_blocks\.(\d+)\.(.+)$", key):
            block, rest = f"single_transformer_blocks.{m[1]}.", m[2]
            if linear1 := re.match(r"linear1\.(weight|bias)$", rest):
                sizes = [inner_dim] * 3 + [value.shape[0] - 3 * inner_dim]
                names = ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp")
                for name, part in zip(names, _split(value, sizes), strict=True):
                    out[f"{block}{name}.{linear1[1]}"] = part
                continue
            renamed = _rename(rest, SINGLE)
        elif m := re.match(r"distilled_guidance_layer\.layers\.(\d+)\.(in|out)_layer\.(weight|bias)$", key):
            linear = "linear_1" if m[2] == "in" else "linear_2"
            out[f"distilled_guidance_layer.layers.{m[1]}.{linear}.{m[3]}"] = value
            continue
        elif m := re.match(r"distilled_guidance_layer\.norms\.(\d+)\.scale$", key):
            out[f"distilled_guidance_layer.norms.{m[1]}.weight"] = value
            continue
        elif key.startswith("final_layer.adaLN_modulation.1."):
            # BFL stores (shift, scale); diffusers' AdaLayerNormContinuous wants (scale, shift)
            shift, scale = value.chunk(2, dim=0)
            out["norm_out.linear." + key.rsplit(".", 1)[1]] = torch.cat([scale, shift], dim=0)
            continue
        else:
            block, renamed = "", _rename(key, DIRECT)
        if renamed is None:
            raise KeyError(f"unknown FLUX.1 tensor {key!r}")
        out[block + renamed] = value
    return out
