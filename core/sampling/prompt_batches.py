"""Conditioning for a batch whose images may have prompts of their own.

``ctx.prompts`` / ``ctx.negative_prompts`` hold one prompt per image (wildcards, dynamic
prompts). Each distinct (prompt, negative) pair is encoded once; a batch's conditioning
is its images' rows stacked in order. When every image of the batch shares one pair, the
rows are that pair's encoding repeated, exactly as before per-image prompts existed.

Prompts of different lengths encode to different token counts (CLIP: 77 per chunk); the
rows are padded to the longest with their last token vector repeated, as A1111 does when
it stacks conditionings of different lengths (``stack_conds``), so a batch and its CFG
halves stay one tensor.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from core.families.base import Conditioning

Pair = tuple[Conditioning, Conditioning | None]


class PromptEncodings:
    def __init__(
        self,
        encode: Callable[[str, str], Pair],
        empty_negative: Callable[[Conditioning], Conditioning | None] | None = None,
    ) -> None:
        """``encode(prompt, negative)`` gives the family's pair, each of batch 1;
        ``empty_negative(cond)``: the family's stand-in for an empty negative (SDXL's
        zeros), or None to encode "" like any other negative."""
        self._encode = encode
        self._empty_negative = empty_negative
        self._pairs: dict[tuple[str, str], Pair] = {}

    def encode_all(self, prompts: list[str], negatives: list[str]) -> None:
        """Encode every distinct pair (run under the memory mode's "text" phase)."""
        for prompt, negative in zip(prompts, negatives, strict=True):
            self.pair(prompt, negative)

    def pair(self, prompt: str, negative: str) -> Pair:
        key = (prompt, negative)
        if key not in self._pairs:
            cond, uncond = self._encode(prompt, negative)
            if uncond is not None and negative == "" and self._empty_negative is not None:
                zeros = self._empty_negative(cond)
                uncond = zeros if zeros is not None else uncond
            self._pairs[key] = (cond, uncond)
        return self._pairs[key]

    def batch(self, prompts: list[str], negatives: list[str]) -> Pair:
        """The conditioning of one batch: one row per image, in order."""
        pairs = [self.pair(p, n) for p, n in zip(prompts, negatives, strict=True)]
        if all(pair is pairs[0] for pair in pairs):
            cond, uncond = pairs[0]
            return cond.repeat(len(pairs)), uncond.repeat(len(pairs)) if uncond is not None else None
        conds = [cond for cond, _ in pairs]
        unconds = [uncond for _, uncond in pairs]
        rows = conds + [u for u in unconds if u is not None]
        tokens = _longest(rows)
        stacked = _stack([_padded(c, tokens) for c in conds])
        if any(u is None for u in unconds):
            return stacked, None
        return stacked, _stack([_padded(u, tokens) for u in unconds])  # type: ignore[arg-type]


def _longest(rows: list[Conditioning]) -> int | None:
    if any(isinstance(row.embeds, list) for row in rows):
        return None  # per-image tensors of their own length (Z-Image): nothing to pad
    return max(row.embeds.shape[1] for row in rows)


def _padded(row: Conditioning, tokens: int | None) -> Conditioning:
    embeds = row.embeds
    if tokens is None or embeds.shape[1] == tokens:
        return row
    last = embeds[:, -1:, :].expand(-1, tokens - embeds.shape[1], -1)
    return Conditioning(torch.cat([embeds, last], dim=1), dict(row.extra))


def _stack(rows: list[Conditioning]) -> Conditioning:
    stacked = rows[0]
    for row in rows[1:]:
        stacked = stacked.concat(row)
    return stacked
