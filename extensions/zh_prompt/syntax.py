"""Split a prompt into the parts a translator may touch and the parts it must not.

A1111 prompt syntax survives translation byte for byte: extra-network tags
(``<lora:名字:0.8>``, kept whole even when the name is Chinese), escapes (``\\(``), the
brackets, colons and bars of weights and prompt editing (``(词:1.2)``, ``[a:b:0.5]``,
``[a|b]``), commas and the keywords ``BREAK``/``AND`` (plain ASCII, which is never
translated). Only the text between those marks is handed to the translator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CJK_CHARS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff"
CJK = re.compile(f"[{CJK_CHARS}]")
CJK_RUN = re.compile(f"[{CJK_CHARS}]+")

_TAG = re.compile(r"<[^<>\n]*>")
_STRUCTURE = re.compile(r"(\\.|[()\[\]|:,])")

# Chinese input methods type full-width punctuation. For an English prompt it becomes
# ASCII: commas for the separators, and the brackets and colon of weight syntax, which
# users clearly mean when they type "（红色：1.2）".
_FULLWIDTH = str.maketrans(
    {
        "，": ", ",
        "、": ", ",
        "。": ", ",
        "；": ", ",
        "！": ", ",
        "？": ", ",
        "：": ":",
        "（": "(",
        "）": ")",
        "【": "[",
        "】": "]",
        "“": '"',
        "”": '"',
        "‘": "'",
        "’": "'",
        "　": " ",
    }
)


def has_cjk(text: str) -> bool:
    return CJK.search(text) is not None


@dataclass
class Piece:
    """A run of prompt text: ``translatable`` pieces hold words, the others are syntax."""

    text: str
    translatable: bool


def split_prompt(prompt: str, normalise_punctuation: bool = True) -> list[Piece]:
    """The prompt as pieces whose concatenation is the prompt (after punctuation
    normalisation, which never touches a ``<...>`` tag)."""
    pieces: list[Piece] = []
    position = 0
    for tag in _TAG.finditer(prompt):
        pieces += _split_text(prompt[position : tag.start()], normalise_punctuation)
        pieces.append(Piece(tag.group(0), False))
        position = tag.end()
    pieces += _split_text(prompt[position:], normalise_punctuation)
    return pieces


def _split_text(text: str, normalise_punctuation: bool) -> list[Piece]:
    if normalise_punctuation:
        text = text.translate(_FULLWIDTH)
    pieces = []
    for part in _STRUCTURE.split(text):
        if not part:
            continue
        is_structure = _STRUCTURE.fullmatch(part) is not None
        pieces.append(Piece(part, translatable=not is_structure and has_cjk(part)))
    return pieces


def join_pieces(parts: list[str]) -> str:
    """Concatenate translated pieces, adding a space where two words would touch."""
    out = ""
    for part in parts:
        if out and part and out[-1].isalnum() and part[0].isalnum():
            out += " "
        out += part
    return out


def tidy_commas(text: str) -> str:
    """Collapse the doubled or dangling separators that dropped words leave behind
    ("长发，的，微笑" -> "long hair, , smile" -> "long hair, smile")."""
    text = re.sub(r",(\s*,)+", ",", text)
    return text.strip(" ,")


def strip_tags(prompt: str) -> str:
    """The prompt without ``<...>`` tags (for the English copy in translate_keep mode,
    so a LoRA is not applied twice)."""
    return tidy_commas(_TAG.sub("", prompt))
