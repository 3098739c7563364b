"""Text encoders from GGUF files (llama.cpp's tensor names), for the split layouts:
T5 for FLUX.1 and Chroma, Qwen3 for Z-Image, Qwen2.5-VL's language model for Qwen-Image.

city96's ``t5-v1_1-xxl-encoder-Q8_0.gguf`` (and its Q4_K_M, Q5_K_M... siblings), which
ComfyUI-GGUF users keep in ``text_encoders/`` or ``clip/``, are written by llama.cpp's
converter: ``general.architecture`` is ``t5encoder`` (a full T5 is ``t5``, its decoder
and LM head unused here) and the tensors have llama.cpp's names (``token_embd.weight``,
``enc.blk.N.attn_q.weight``, ``enc.output_norm.weight``...), mixed quantisations
(Q8_0, K-quants, F16 and F32 for norms and the relative attention bias).

The weights are dequantised on load, one tensor at a time, to the compute dtype, and
loaded into transformers' ``T5EncoderModel``: transformers' own GGUF loading dequantises
too (it has no quantised T5 at run time), and this reader keeps the config the pipeline
ships and refuses any tensor it cannot place (transformers' skips them silently).
Memory: the encoder then costs what its bf16/fp16 safetensors would: T5-XXL's encoder
(4.76 B parameters) is ~9.5 GB in bf16, against ~5 GB for the Q8_0 file and ~3 GB for
Q4_K_M; the file itself is memory-mapped, and the transient cost of loading is one
tensor in float32 (the largest, ``token_embd``, 32128 x 4096: ~0.5 GB). The quantised
file saves disk and download, not memory, in Easel. Dequantising is gguf-py's numpy
reference (exact, single-threaded): ~24 M parameters/s for Q8_0 and ~20 M/s for Q4_K
measured on a shared 2-core CPU, so a T5-XXL GGUF takes minutes to load there where its
safetensors takes seconds (dequantising with torch on the device would be the faster
path; diffusers' torch Q8_0 kernel rounds through float16, so it is not used here).

The Qwen text encoders come as llama.cpp's own conversions (``Qwen3-4B-Q8_0.gguf``,
architecture ``qwen3``; ``Qwen2.5-VL-7B-Instruct-Q8_0.gguf``, ``qwen2vl``, whose vision
tower is a separate mmproj file that text-to-image does not need): llama.cpp's
``blk.N.attn_q`` names, not permuted (only its ``llama`` architecture permutes q/k rows,
as transformers' and ComfyUI-GGUF's readers agree), mapped to the bare language-model
names (``layers.N.self_attn.q_proj``, ``embed_tokens``, ``norm``) that the Z-Image and
Qwen-Image loaders already accept. The same memory rule holds: Qwen3-4B is ~8 GB in bf16,
Qwen2.5-VL-7B's language model ~15 GB (its embedding, 152064 x 3584, is ~2.2 GB in float32
while it is converted).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import ModelError

if TYPE_CHECKING:
    import torch

# what a loader asks for -> the GGUF architectures that hold it, and a file users have
ARCHITECTURES = {
    "t5": ("t5encoder", "t5"),  # a full T5 GGUF ("t5") also holds a decoder, unused here
    "qwen3": ("qwen3",),
    "qwen2.5-vl": ("qwen2vl",),
}
EXAMPLES = {
    "t5": "a T5 encoder (as city96's t5-v1_1-xxl-encoder-Q8_0.gguf)",
    "qwen3": "a Qwen3 text model (as Qwen3-4B-Q8_0.gguf)",
    "qwen2.5-vl": "a Qwen2.5-VL text model (as Qwen2.5-VL-7B-Instruct-Q8_0.gguf)",
}
# llama.cpp's T5 encoder names -> transformers' T5EncoderModel names (gguf-py's
# MODEL_TENSOR.ENC_* table, read backwards); ffn_gate/ffn_up are v1.1's gated wi_0/wi_1
T5_TOP = {
    "token_embd.weight": "shared.weight",
    "enc.output_norm.weight": "encoder.final_layer_norm.weight",
}
T5_BLOCK = {
    "attn_norm": "layer.0.layer_norm",
    "attn_q": "layer.0.SelfAttention.q",
    "attn_k": "layer.0.SelfAttention.k",
    "attn_v": "layer.0.SelfAttention.v",
    "attn_o": "layer.0.SelfAttention.o",
    "attn_rel_b": "layer.0.SelfAttention.relative_attention_bias",
    "ffn_norm": "layer.1.layer_norm",
    "ffn_gate": "layer.1.DenseReluDense.wi_0",
    "ffn_up": "layer.1.DenseReluDense.wi_1",
    "ffn_down": "layer.1.DenseReluDense.wo",
}
T5_UNUSED = ("dec.", "output.weight")
# llama.cpp's Qwen2/Qwen3 names -> transformers' bare language-model names
QWEN_TOP = {
    "token_embd.weight": "embed_tokens.weight",
    "output_norm.weight": "norm.weight",
    "output.weight": "lm_head.weight",
}
QWEN_BLOCK = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


def t5_name(name: str) -> str | None:
    """transformers' name for a llama.cpp T5 tensor; None for the decoder's and the LM
    head's (unused by an encoder); KeyError for a name no T5 has."""
    if name in T5_TOP:
        return T5_TOP[name]
    if name.startswith(T5_UNUSED):
        return None
    if (m := re.fullmatch(r"enc\.blk\.(\d+)\.(\w+)\.weight", name)) and m[2] in T5_BLOCK:
        return f"encoder.block.{int(m[1])}.{T5_BLOCK[m[2]]}.weight"
    raise KeyError(name)


def qwen_name(name: str) -> str:
    """transformers' bare name for a llama.cpp Qwen2/Qwen3 tensor; KeyError for others."""
    if name in QWEN_TOP:
        return QWEN_TOP[name]
    if (m := re.fullmatch(r"blk\.(\d+)\.(\w+)\.(weight|bias)", name)) and m[2] in QWEN_BLOCK:
        return f"layers.{int(m[1])}.{QWEN_BLOCK[m[2]]}.{m[3]}"
    raise KeyError(name)


def tensor_name(kind: str, name: str) -> str | None:
    return t5_name(name) if kind == "t5" else qwen_name(name)


def _reader(path: Path):
    try:
        from gguf import GGUFReader

        return GGUFReader(str(path))
    except Exception as exc:  # truncated or malformed: untrusted input
        raise ModelError(f"{path}: unreadable GGUF file: {type(exc).__name__}: {exc}") from exc


def architecture(reader) -> str | None:
    field = reader.get_field("general.architecture")
    try:
        value = field.contents() if field is not None else None
    except Exception:
        return None
    return value if isinstance(value, str) else None


def kind_of(arch: str | None) -> str | None:
    return next((kind for kind, archs in ARCHITECTURES.items() if arch in archs), None)


def text_shapes(path: Path) -> dict[str, list[int]]:
    """``{transformers name: shape}`` of a text encoder GGUF (for finding companions by
    their shapes, as safetensors headers are read); ``{}`` for any other GGUF."""
    try:
        reader = _reader(path)
    except ModelError:
        return {}
    kind = kind_of(architecture(reader))
    if kind is None:
        return {}
    shapes: dict[str, list[int]] = {}
    for tensor in reader.tensors:
        try:
            name = tensor_name(kind, tensor.name)
        except KeyError:
            return {}
        if name is not None:
            shapes[name] = [int(d) for d in reversed(tensor.shape.tolist())]
    return shapes


def read_text_encoder(path: Path, kind: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """A text encoder GGUF's weights under transformers' names, dequantised to ``dtype``;
    ``kind`` is what the loader needs ("t5", "qwen3", "qwen2.5-vl"). A file of another
    architecture, a tensor that model has not, or a quantisation gguf cannot dequantise is
    a ModelError naming the file (and the tensor)."""
    import numpy as np
    import torch
    from gguf import quants

    reader = _reader(path)
    arch = architecture(reader)
    if arch not in ARCHITECTURES[kind]:
        raise ModelError(
            f"{path}: a GGUF file of architecture {arch!r}; expected {EXAMPLES[kind]}, "
            f"llama.cpp's {' or '.join(map(repr, ARCHITECTURES[kind]))}"
        )
    state: dict[str, torch.Tensor] = {}
    for tensor in reader.tensors:
        try:
            name = tensor_name(kind, tensor.name)
        except KeyError:
            raise ModelError(f"{path}: tensor {tensor.name!r} is not part of {EXAMPLES[kind]}") from None
        if name is None:
            continue
        try:
            wide = quants.dequantize(tensor.data, tensor.tensor_type)
        except Exception as exc:  # NotImplementedError for types gguf-py cannot dequantise
            raise ModelError(
                f"{path}: tensor {tensor.name!r} of type {tensor.tensor_type.name}: "
                f"cannot dequantise: {type(exc).__name__}: {exc}"
            ) from exc
        wide = np.asarray(wide, dtype=np.float32)
        if not (wide.flags.writeable and wide.flags.c_contiguous):  # F32 tensors: views of the map
            wide = wide.copy()
        state[name] = torch.from_numpy(wide).to(dtype)
    return state

