"""CLIP text encoding the way A1111 does it: weighted 77-token chunks, emphasis, clip skip.

Shared by the CLIP-based families (SD1.x/2.x, SDXL).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from core.families.devices import execution_device
from core.prompt_parser import EmbeddingFinder, PromptChunk, tokenize_weighted


@dataclass
class ClipOutput:
    hidden: torch.Tensor  # (1, 77 * chunks, width)
    pooled: torch.Tensor | None  # (1, projection) from the first chunk, when asked for


def tokenize_pair(
    tokenizer, prompt: str, negative: str, embeddings: EmbeddingFinder | None = None
) -> tuple[list[PromptChunk], list[PromptChunk]]:
    """Both prompts with the same number of chunks (the shorter padded with empty ones)."""
    positive = tokenize_weighted(tokenizer, prompt, embeddings=embeddings)
    negative_chunks = tokenize_weighted(tokenizer, negative, min_chunks=len(positive), embeddings=embeddings)
    if len(negative_chunks) > len(positive):
        positive = tokenize_weighted(
            tokenizer, prompt, min_chunks=len(negative_chunks), embeddings=embeddings
        )
    return positive, negative_chunks


@contextmanager
def substituted_embeddings(text_encoder, fixes: list[tuple[int, Any]]) -> Iterator[None]:
    """While encoding one chunk, replace the input embeddings under each fix by the
    embedding's vectors (A1111's ``EmbeddingsWithFixes``): nothing on the model changes,
    so the next prompt is unaffected."""
    if not fixes:
        yield
        return

    def replace(_module, _args, output: torch.Tensor) -> torch.Tensor:
        output = output.clone()
        for offset, vectors in fixes:
            start = offset + 1  # after BOS
            count = min(int(vectors.shape[0]), output.shape[1] - start - 1)  # EOS stays
            output[:, start : start + count] = vectors[:count].to(output.device, output.dtype)
        return output

    handle = text_encoder.get_input_embeddings().register_forward_hook(replace)
    try:
        yield
    finally:
        handle.remove()


def _final_layer_norm(text_encoder) -> torch.nn.Module:
    # transformers 5 flattened CLIPTextModel (no ``text_model`` level); older ones have it
    inner = getattr(text_encoder, "text_model", text_encoder)
    return inner.final_layer_norm


def encode_chunks(
    text_encoder,
    chunks: list[PromptChunk],
    hidden_layer: int | None,
    apply_final_norm: bool,
    want_pooled: bool = False,
) -> ClipOutput:
    """Encode each chunk, apply emphasis, concatenate along the token axis.

    ``hidden_layer`` None means the last hidden state; otherwise an index into
    ``hidden_states`` (``-2`` = penultimate), optionally followed by the final layer norm
    (A1111's clip skip for SD1.x).
    """
    device = execution_device(text_encoder)
    hidden_parts = []
    pooled = None
    for index, chunk in enumerate(chunks):
        ids = torch.tensor([chunk.tokens], device=device)
        with substituted_embeddings(text_encoder, chunk.fixes):
            output = text_encoder(ids, output_hidden_states=hidden_layer is not None)
        if hidden_layer is None:
            z = output[0]
        else:
            z = output.hidden_states[hidden_layer]
            if apply_final_norm:
                z = _final_layer_norm(text_encoder)(z)
        if want_pooled and index == 0:
            pooled = output[0] if output[0].ndim == 2 else getattr(output, "text_embeds", None)
        if any(w != 1.0 for w in chunk.weights):
            # A1111 "Original" emphasis: weight the tokens, then restore the mean
            weights = torch.tensor(chunk.weights, device=z.device, dtype=z.dtype)
            original_mean = z.mean()
            z = z * weights.reshape(1, -1, 1)
            z = z * (original_mean / z.mean())
        hidden_parts.append(z)
    return ClipOutput(hidden=torch.cat(hidden_parts, dim=1), pooled=pooled)
