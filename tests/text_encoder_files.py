"""T5 encoder files as users have them, for tests: city96's GGUF (llama.cpp's names, mixed
quantisations) and ComfyUI's FP8 ones (``t5xxl_fp8_e4m3fn`` plain and ``_scaled``).

The GGUF writer names tensors with gguf-py's own table (``get_tensor_name_map`` for
``t5encoder``), not with Easel's reader's, so the two are checked against each other.
Each writer returns what the file means: its weights dequantised/widened in float32 under
transformers' names, which the references are built from.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tests.flux_files import TEXT_WIDTH, _quantize

TIED = "encoder.embed_tokens.weight"  # T5EncoderModel's copy of shared.weight


def tiny_t5(seed: int, layers: int = 2, d_ff: int = 256):
    """A T5 v1.1 encoder at toy sizes (T5-XXL's vocabulary); ``d_ff`` 256 gives its
    ``wo`` rows of 256, so K-quants (256-element blocks) apply to it."""
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    return T5EncoderModel(
        T5Config(
            vocab_size=32128, d_model=TEXT_WIDTH, d_kv=16, d_ff=d_ff, num_layers=layers, num_heads=2,
            feed_forward_proj="gated-gelu", is_gated_act=True, dense_act_fn="gelu_new",
        )
    ).eval()  # fmt: skip


def encoder_weights(t5) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in t5.state_dict().items() if k != TIED}


def with_weights(t5, meant: dict[str, torch.Tensor]):
    """A copy of ``t5`` holding ``meant`` (float32)."""
    from transformers import T5EncoderModel

    model = T5EncoderModel(t5.config).eval()
    model.load_state_dict({**meant, TIED: meant["shared.weight"]}, strict=True)
    return model


def write_t5_gguf(
    path: Path, t5, qtype_name: str, embed_type: str = "Q8_0", arch: str = "t5encoder"
) -> dict[str, torch.Tensor]:
    """``t5`` as llama.cpp's converter writes it (city96's files): 2-D weights in
    ``qtype_name`` where their rows fit its blocks, else Q8_0 where they fit 32, else F32
    (norms, the relative attention bias); ``token_embd`` in ``embed_type``."""
    import gguf

    layers = t5.config.num_layers
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.T5ENCODER, layers)
    writer = gguf.GGUFWriter(str(path), arch=arch)
    writer.add_name("t5-v1_1-xxl-encoder (tiny)")
    writer.add_block_count(layers)
    writer.add_embedding_length(t5.config.d_model)
    writer.add_feed_forward_length(t5.config.d_ff)
    writer.add_head_count(t5.config.num_heads)
    return _write_tensors(writer, path, encoder_weights(t5), names.get_name, qtype_name, embed_type)


def _write_tensors(
    writer: Any,
    path: Path,
    weights: dict[str, torch.Tensor],
    gguf_name: Callable[[str], str | None],
    qtype_name: str,
    embed_type: str,
) -> dict[str, torch.Tensor]:
    """Write ``weights`` under their GGUF names (``gguf_name`` of a key's module path, then
    its ``.weight``/``.bias``), quantised as ``_choose`` says, and close the file; what each
    tensor reads back as."""
    import gguf

    meant: dict[str, torch.Tensor] = {}
    for key, tensor in weights.items():
        base, suffix = key.rsplit(".", 1)
        name = gguf_name(base)
        assert name is not None, key
        data = tensor.float().numpy()
        qtype = _choose(data, embed_type if name == "token_embd" else qtype_name)
        if qtype is None:
            writer.add_tensor(f"{name}.{suffix}", data)
            meant[key] = torch.from_numpy(data.copy())
        elif qtype == gguf.GGMLQuantizationType.F16:
            half = data.astype(np.float16)
            writer.add_tensor(f"{name}.{suffix}", half)
            meant[key] = torch.from_numpy(half.astype(np.float32))
        else:
            raw = _quantize(data, qtype)
            writer.add_tensor(f"{name}.{suffix}", raw, raw_dtype=qtype)
            meant[key] = torch.from_numpy(np.asarray(gguf.quants.dequantize(raw, qtype), dtype=np.float32))
    path.parent.mkdir(parents=True, exist_ok=True)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return meant


def _choose(data: np.ndarray, qtype_name: str) -> Any:
    import gguf

    if data.ndim != 2:
        return None
    qtype = gguf.GGMLQuantizationType[qtype_name]
    if qtype == gguf.GGMLQuantizationType.F16:
        return qtype
    for candidate in (qtype, gguf.GGMLQuantizationType.Q8_0):
        if data.shape[1] % gguf.GGML_QUANT_SIZES[candidate][0] == 0:
            return candidate
    return None


def write_other_gguf(path: Path, arch: str = "llama") -> Path:
    """A GGUF of another architecture (llama.cpp's names for a llama block)."""
    import gguf

    writer = gguf.GGUFWriter(str(path), arch=arch)
    writer.add_tensor("token_embd.weight", np.ones((8, TEXT_WIDTH), dtype=np.float32))
    writer.add_tensor("blk.0.attn_q.weight", np.ones((TEXT_WIDTH, TEXT_WIDTH), dtype=np.float32))
    path.parent.mkdir(parents=True, exist_ok=True)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def to_fp8(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``t5xxl_fp8_e4m3fn.safetensors``: every 2-D weight cast to float8_e4m3fn, no
    scales (values past 448 saturate as torch casts them). Returns (file, meaning)."""
    out, meant = {}, {}
    for key, tensor in state.items():
        out[key] = tensor.to(torch.float8_e4m3fn) if tensor.ndim == 2 else tensor
        meant[key] = out[key].float()
    return out, meant


def to_fp8_scaled(
    state: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``t5xxl_fp8_e4m3fn_scaled.safetensors`` as ComfyUI's converters write it: a
    ``scaled_fp8`` marker; the linear weights in float8_e4m3fn with a float64 scalar
    ``scale_weight`` and a ``scale_input`` beside each; ``shared`` and the norms (and the
    relative attention bias) left wide. Returns (file, meaning)."""
    out: dict[str, torch.Tensor] = {"scaled_fp8": torch.empty(0, dtype=torch.float8_e4m3fn)}
    meant: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if tensor.ndim != 2 or key == "shared.weight" or "relative_attention_bias" in key:
            out[key] = meant[key] = tensor
            continue
        scale = tensor.abs().max().double() / 448.0
        fp8 = (tensor.double() / scale).to(torch.float8_e4m3fn)
        base = key.removesuffix(".weight")
        out[key] = fp8
        out[base + ".scale_weight"] = scale.reshape(())
        out[base + ".scale_input"] = torch.ones((), dtype=torch.float64)
        meant[key] = fp8.float() * scale.float()  # in the compute dtype, as ComfyUI widens them
    return out, meant


def write_qwen_gguf(
    path: Path, weights: dict[str, torch.Tensor], arch: str, qtype_name: str = "Q8_0", embed_type: str = "F16"
) -> dict[str, torch.Tensor]:
    """A Qwen language model (``weights`` under the bare names: ``layers.N...``,
    ``embed_tokens.weight``, ``norm.weight``) as llama.cpp writes it for ``arch``
    ("qwen3", "qwen2vl"): gguf-py's names, not permuted. Returns what it means (bare names)."""
    import gguf

    arch_enum = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch)
    layers = 1 + max(int(k.split(".")[1]) for k in weights if k.startswith("layers."))
    names = gguf.get_tensor_name_map(arch_enum, layers)
    writer = gguf.GGUFWriter(str(path), arch=arch)
    writer.add_block_count(layers)
    return _write_tensors(
        writer, path, weights, lambda base: names.get_name("model." + base), qtype_name, embed_type
    )
