"""Textual-inversion embeddings of one request, as the CLIP families' tokenizer finds them.

Extensions put ``plugin_api.extra_networks.PromptEmbedding`` objects in
``ctx.prompt_embeddings``; the engine wraps them in ``PromptEmbeddings`` for the family's
``encode_prompt_pair``, which asks for one ``EmbeddingLookup`` per tokenizer/encoder.
The lookup matches A1111's ``EmbeddingDatabase.find_embedding_at_position``: an embedding
is found where the token ids of its name start, the longest name first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plugin_api.extra_networks import PromptEmbedding
from plugin_api.types import GenerationContext

TI_HASHES = "TI hashes"  # A1111's infotext field


class EmbeddingLookup:
    """The embeddings that fit one text encoder, by the first token id of their name."""

    def __init__(
        self, owner: PromptEmbeddings, by_first: dict[int, list[tuple[list[int], PromptEmbedding, Any]]]
    ):
        self._owner = owner
        self._by_first = by_first

    def find(self, tokens: list[int], position: int) -> tuple[Any, int] | None:
        for ids, embedding, vectors in self._by_first.get(tokens[position], ()):
            if tokens[position : position + len(ids)] == ids:
                self._owner.used.setdefault(embedding.name, embedding)
                return vectors, len(ids)
        return None


class PromptEmbeddings:
    """One request's embeddings; ``used`` collects those a prompt actually used."""

    def __init__(self, embeddings: Mapping[str, PromptEmbedding] | None) -> None:
        self.embeddings = dict(embeddings or {})
        self.used: dict[str, PromptEmbedding] = {}
        self.problems: list[str] = []
        self._lookups: dict[tuple[int, str], EmbeddingLookup] = {}

    def __bool__(self) -> bool:
        return bool(self.embeddings)

    def lookup(self, tokenizer: Any, component: str, width: int) -> EmbeddingLookup | None:
        """The lookup for the text encoder ``component`` ("text_encoder", "text_encoder_2")
        whose input embeddings are ``width`` wide; None when no embedding is given."""
        if not self.embeddings:
            return None
        key = (id(tokenizer), component)
        if key not in self._lookups:
            self._lookups[key] = self._build(tokenizer, component, width)
        return self._lookups[key]

    def _build(self, tokenizer: Any, component: str, width: int) -> EmbeddingLookup:
        by_first: dict[int, list[tuple[list[int], PromptEmbedding, Any]]] = {}
        for name, embedding in self.embeddings.items():
            vectors = embedding.vectors.get(component)
            if vectors is None:
                continue
            if vectors.ndim != 2 or int(vectors.shape[-1]) != width or int(vectors.shape[0]) < 1:
                self.problems.append(
                    f"embedding {name!r}: vectors of shape {tuple(vectors.shape)} do not fit {component} "
                    f"(width {width}); not used"
                )
                continue
            ids = tokenizer([name], add_special_tokens=False, truncation=False)["input_ids"][0]
            if not ids:
                continue
            by_first.setdefault(ids[0], []).append((list(ids), embedding, vectors))
        for matches in by_first.values():
            matches.sort(key=lambda match: len(match[0]), reverse=True)
        return EmbeddingLookup(self, by_first)


def record_embeddings(embeddings: PromptEmbeddings, ctx: GenerationContext) -> None:
    """The infotext's ``TI hashes`` (A1111: ``name: shorthash`` for each used embedding,
    ':' and ',' taken out of the name) and the problems as warnings."""
    for problem in embeddings.problems:
        if problem not in ctx.warnings:
            ctx.warnings.append(problem)
    hashes = [
        f"{name.replace(':', '').replace(',', '')}: {embedding.hash}"
        for name, embedding in embeddings.used.items()
        if embedding.hash
    ]
    if hashes:
        earlier = ctx.extra_params.get(TI_HASHES)
        ctx.extra_params[TI_HASHES] = ", ".join([*hashes, *([earlier] if earlier else [])])
