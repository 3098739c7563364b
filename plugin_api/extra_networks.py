"""Extra networks: A1111's ``<name:arg1:arg2>`` prompt tags handled by an extension, a card
list for the WebUI's browser, and textual-inversion embeddings the text encoder uses.

An extension registers one ``ExtraNetworkSpec`` per tag name in ``register_extra_networks``
(A1111's ``extra_networks.register_extra_network(ExtraNetwork)``). For every request the
host then, as A1111 does:

1. takes every ``<name:...>`` tag out of the positive prompt (once before the
   ``transform_prompt`` chain, so a translator never sees them, and once after it, so a
   wildcard that writes a tag works); each tag becomes an ``ExtraNetworkParams``;
2. after ``before_sample``, calls ``activate(ctx, params_list)`` of EVERY registered
   network, with an empty list for a network the prompt does not mention, so it can undo
   what an earlier request left on the shared model;
3. after the request (finished, failed or interrupted), calls ``deactivate(ctx)``.

A tag whose name no extension registered is removed too (as A1111 removes it) and
reported in ``result.warnings``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# the preview images A1111's card browser looks for beside a model file
PREVIEW_SUFFIXES = (".png", ".preview.png")


@dataclass
class ExtraNetworkParams:
    """One tag from the prompt: ``<lora:style:0.8>`` -> ``items=["style", "0.8"]``."""

    items: list[str]
    tag: str = ""  # the tag as written, for messages

    @property
    def positional(self) -> list[str]:
        """The items without ``=`` (A1111's ``positional``): ``<lora:x:0.5:te=1>`` -> ``["x", "0.5"]``."""
        return [item for item in self.items if "=" not in item]

    @property
    def named(self) -> dict[str, str]:
        """The ``key=value`` items (A1111's ``named``): ``<lora:x:te=1>`` -> ``{"te": "1"}``."""
        return dict(item.split("=", 1) for item in self.items if "=" in item)


@dataclass
class ExtraNetworkCard:
    """One entry of the extra-networks browser (A1111's card)."""

    name: str
    prompt: str  # the text the browser inserts into the prompt: "<lora:style:1>", "my_embedding"
    family: str = "unknown"  # the model family it was made for: "sd15", "sdxl"... or "unknown"
    path: str | None = None  # the file it comes from
    preview: str | None = None  # a preview image beside the file (``preview_beside``)
    description: str = ""
    hash: str | None = None  # A1111's short hash, as the infotext writes it


@dataclass
class ExtraNetworkSpec:
    """A tag name and what it does.

    ``activate(ctx, params_list)`` is called once per request for every registered network
    (``params_list`` empty when the prompt has none of its tags) with ``ctx.model`` loaded;
    record infotext fields in ``ctx.extra_params`` and problems in ``ctx.warnings``;
    raising ``plugin_api.InvalidRequest`` refuses the request. ``deactivate(ctx)``, when
    given, is called once per request after it ends, however it ended. ``list_cards()``
    lists the browser's cards. Exceptions other than ``InvalidRequest`` are reported with
    the extension's name and the request goes on without that network.
    """

    name: str  # the tag name: "lora" for <lora:...>
    activate: Callable[[Any, list[ExtraNetworkParams]], None]
    deactivate: Callable[[Any], None] | None = None
    list_cards: Callable[[], list[ExtraNetworkCard]] | None = None
    title: str = ""  # the browser's tab title; the name when empty
    aliases: tuple[str, ...] = ()


@dataclass
class PromptEmbedding:
    """A textual-inversion embedding the CLIP text encoders use where its name appears in
    a prompt (A1111's matching: the name's tokens are replaced by ``count`` vectors).

    Put it in ``ctx.prompt_embeddings[name]`` before the prompt is encoded (in an extra
    network's ``activate`` or in ``before_sample``); the host records the used ones in the
    infotext's ``TI hashes`` field. It lives for one request: nothing on the model changes.
    """

    name: str
    # text encoder component -> tensor (count, width): "text_encoder" (SD1.x/2.x, SDXL's
    # CLIP-L) and "text_encoder_2" (SDXL's OpenCLIP-G)
    vectors: dict[str, Any]
    hash: str = ""  # A1111's short hash (sha256 of the file, 12 hex digits)
    path: str | None = None

    @property
    def count(self) -> int:
        return int(next(iter(self.vectors.values())).shape[0]) if self.vectors else 0


def preview_beside(path: str | Path) -> str | None:
    """The preview image A1111 shows for a model file: ``<stem>.png`` or ``<stem>.preview.png``
    in the same folder, or None."""
    path = Path(path)
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    for suffix in PREVIEW_SUFFIXES:
        candidate = path.with_name(stem + suffix)
        if candidate.is_file():
            return str(candidate)
    return None


__all__ = [
    "ExtraNetworkCard",
    "ExtraNetworkParams",
    "ExtraNetworkSpec",
    "PromptEmbedding",
    "preview_beside",
]
