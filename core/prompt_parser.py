"""The prompt syntax people already write in AUTOMATIC1111, for CLIP-based families.

``(word:1.2)`` sets a weight, ``(word)`` multiplies by 1.1, ``[word]`` divides by 1.1,
``\\(`` is a literal bracket and ``BREAK`` starts a new 77-token chunk. Prompts longer
than one chunk are split as A1111 does: 75 tokens per chunk plus BOS/EOS, with a comma
near the end of a full chunk moving the rest of the phrase into the next chunk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

ROUND_BRACKET_MULTIPLIER = 1.1
SQUARE_BRACKET_MULTIPLIER = 1 / 1.1
CHUNK_TOKENS = 75  # tokens per chunk, without BOS and EOS
COMMA_PADDING_BACKTRACK = 20  # A1111's default "Prompt word wrap length limit"

_RE_ATTENTION = re.compile(
    r"""
\\\(|
\\\)|
\\\[|
\\]|
\\\\|
\\|
\(|
\[|
:\s*([+-]?[.\d]+)\s*\)|
\)|
]|
[^\\()\[\]:]+|
:
""",
    re.X,
)
_RE_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)
BREAK_MARK = -1.0  # the weight that marks a BREAK fragment


def parse_prompt_attention(text: str) -> list[tuple[str, float]]:
    """Split a prompt into ``(text, weight)`` fragments, as A1111's parser does.

    >>> parse_prompt_attention("a (red:1.5) [cat]")
    [('a ', 1.0), ('red', 1.5), (' ', 1.0), ('cat', 0.9090909090909091)]
    """
    res: list[list] = []
    round_brackets: list[int] = []
    square_brackets: list[int] = []

    def multiply_range(start: int, multiplier: float) -> None:
        for position in range(start, len(res)):
            res[position][1] *= multiplier

    for match in _RE_ATTENTION.finditer(text):
        piece = match.group(0)
        weight = match.group(1)
        if piece.startswith("\\"):
            res.append([piece[1:], 1.0])
        elif piece == "(":
            round_brackets.append(len(res))
        elif piece == "[":
            square_brackets.append(len(res))
        elif weight is not None and round_brackets:
            try:
                multiply_range(round_brackets.pop(), float(weight))
            except ValueError:  # "(a:1.2.3)": A1111 would crash; keep the text as typed
                res.append([piece, 1.0])
        elif piece == ")" and round_brackets:
            multiply_range(round_brackets.pop(), ROUND_BRACKET_MULTIPLIER)
        elif piece == "]" and square_brackets:
            multiply_range(square_brackets.pop(), SQUARE_BRACKET_MULTIPLIER)
        else:
            for i, part in enumerate(_RE_BREAK.split(piece)):
                if i > 0:
                    res.append(["BREAK", BREAK_MARK])
                res.append([part, 1.0])

    for position in round_brackets:
        multiply_range(position, ROUND_BRACKET_MULTIPLIER)
    for position in square_brackets:
        multiply_range(position, SQUARE_BRACKET_MULTIPLIER)

    if not res:
        res = [["", 1.0]]
    i = 0  # merge neighbours with the same weight
    while i + 1 < len(res):
        if res[i][1] == res[i + 1][1]:
            res[i][0] += res[i + 1][0]
            res.pop(i + 1)
        else:
            i += 1
    return [(t, float(w)) for t, w in res]


@dataclass
class PromptChunk:
    """77 token ids (BOS + 75 + EOS) and one weight per token.

    ``fixes`` are textual-inversion embeddings placed in this chunk, A1111's
    ``PromptChunkFix``: (offset after BOS, vectors (count, width)); their token ids are
    placeholders whose input embeddings the encoder replaces by the vectors."""

    tokens: list[int] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    fixes: list[tuple[int, Any]] = field(default_factory=list)


class EmbeddingFinder(Protocol):
    """Finds a textual-inversion embedding whose name's tokens start at ``position``
    (``core.prompt_embeddings.EmbeddingLookup``)."""

    def find(self, tokens: list[int], position: int) -> tuple[Any, int] | None:
        """(vectors (count, width), how many prompt tokens the name takes) or None."""


EMBEDDING_PLACEHOLDER = 0  # A1111's token id under an embedding's vectors (never encoded as such)


def tokenize_weighted(
    tokenizer, prompt: str, min_chunks: int = 1, embeddings: EmbeddingFinder | None = None
) -> list[PromptChunk]:
    """Tokenize an A1111 prompt into weighted 77-token chunks.

    ``tokenizer`` is a CLIP tokenizer; padding uses its pad token (EOS for SD1.x, "!"
    for the OpenCLIP encoders), as both A1111 and diffusers do. The result has at least
    ``min_chunks`` chunks: extra chunks hold an empty prompt, which is how A1111 pads a
    negative prompt to the positive prompt's length. With ``embeddings``, an embedding's
    name is replaced by as many placeholder tokens as it has vectors (A1111's
    ``tokenize_line``); an embedding never straddles two chunks.
    """
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    comma = tokenizer.convert_tokens_to_ids(",</w>")
    fragments = parse_prompt_attention(prompt)
    texts = [text for text, weight in fragments if weight != BREAK_MARK]
    encoded = (
        iter(tokenizer(texts, add_special_tokens=False, truncation=False)["input_ids"]) if texts else iter(())
    )

    chunks: list[PromptChunk] = []
    current = PromptChunk()
    last_comma = -1

    def next_chunk() -> None:
        nonlocal current, last_comma
        # BOS, the tokens, EOS, then padding: A1111 pads with EOS and then replaces
        # everything after the first EOS with the pad token (which is EOS for SD1.x)
        padding = CHUNK_TOKENS - len(current.tokens)
        current.tokens = [bos, *current.tokens, eos, *([pad] * padding)]
        current.weights = [1.0, *current.weights, 1.0, *([1.0] * padding)]
        chunks.append(current)
        current = PromptChunk()
        last_comma = -1

    for _text, weight in fragments:
        if weight == BREAK_MARK:
            next_chunk()
            continue
        tokens = next(encoded)
        position = 0
        while position < len(tokens):
            token = tokens[position]
            if token == comma:
                last_comma = len(current.tokens)
            elif (
                COMMA_PADDING_BACKTRACK != 0
                and len(current.tokens) == CHUNK_TOKENS
                and last_comma != -1
                and len(current.tokens) - last_comma <= COMMA_PADDING_BACKTRACK
            ):
                # move the words after the last comma into the next chunk
                break_at = last_comma + 1
                rest_tokens, rest_weights = current.tokens[break_at:], current.weights[break_at:]
                # embeddings after the comma move with their words (A1111 loses them here)
                rest_fixes = [(at - break_at, v) for at, v in current.fixes if at >= break_at]
                current.fixes = [(at, v) for at, v in current.fixes if at < break_at]
                current.tokens, current.weights = current.tokens[:break_at], current.weights[:break_at]
                next_chunk()
                current.tokens, current.weights, current.fixes = rest_tokens, rest_weights, rest_fixes
            if len(current.tokens) == CHUNK_TOKENS:
                next_chunk()
            found = embeddings.find(tokens, position) if embeddings is not None else None
            if found is None:
                current.tokens.append(token)
                current.weights.append(weight)
                position += 1
                continue
            vectors, name_length = found
            count = min(int(vectors.shape[0]), CHUNK_TOKENS)
            if len(current.tokens) + count > CHUNK_TOKENS:
                next_chunk()
            current.fixes.append((len(current.tokens), vectors[:count]))
            current.tokens += [EMBEDDING_PLACEHOLDER] * count
            current.weights += [weight] * count
            position += name_length

    if current.tokens or not chunks:
        next_chunk()
    while len(chunks) < min_chunks:
        next_chunk()
    return chunks


def chunk_count(tokenizer, prompt: str) -> int:
    return len(tokenize_weighted(tokenizer, prompt))
