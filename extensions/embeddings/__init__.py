"""Textual-inversion embeddings, as A1111 uses them: put ``name.safetensors`` in
``models/embeddings/`` (ComfyUI's place) or A1111's top-level ``embeddings/`` folder (beside
the models folder) and write ``name`` in a prompt, positive or negative.

Built only on ``plugin_api``: an extra network (``register_extra_networks``) whose
``activate`` puts every embedding that fits the loaded model into
``ctx.prompt_embeddings``; the host's CLIP encoding replaces the name's tokens by the
embedding's vectors for that request only (nothing on the model changes) and writes A1111's
``TI hashes`` infotext field for the ones a prompt used. ``list_cards`` feeds the browser
(the card inserts the bare name, as A1111's does); ``register_api_routes`` serves
``/sdapi/v1/embeddings`` in A1111's shape.

An embedding made for another model family (an SDXL one on an SD1.5 model) is left out,
as A1111 "skips" it: its name then stays ordinary prompt text.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from extensions.embeddings.library import Embedding, EmbeddingLibrary
from plugin_api.extra_networks import (
    ExtraNetworkCard,
    ExtraNetworkParams,
    ExtraNetworkSpec,
    PromptEmbedding,
    preview_beside,
)
from plugin_api.hookspecs import hookimpl
from plugin_api.model_folders import model_folders
from plugin_api.types import GenerationContext

log = logging.getLogger("easel.embeddings")

NAME = "textual_inversion"  # A1111's extra-networks page for embeddings
FOLDER = "embeddings"
CLIP_FAMILIES = ("sd15", "sdxl")
# the file's vector sets -> the text encoder components they go to
COMPONENTS = {"clip_l": "text_encoder", "clip_g": "text_encoder_2"}


class _State:
    def __init__(self) -> None:
        self.host: Any = None
        self.library = EmbeddingLibrary()
        # input-embedding widths of the last model used ({"clip_l": 768, ...}); None before
        # any: then every embedding is "loaded", as A1111 before it knows the shape
        self.widths: dict[str, int] | None = None


STATE = _State()


def embedding_folders(models_dir: Path) -> list[Path]:
    """``<models>/embeddings`` and A1111's ``<webui>/embeddings`` beside ``<webui>/models``."""
    folders = model_folders(models_dir, FOLDER) or [models_dir / FOLDER]
    a1111 = models_dir.parent / FOLDER
    if a1111.is_dir() and all(a1111.resolve() != f.resolve() for f in folders if f.exists()):
        folders.append(a1111)
    return folders


@hookimpl
def startup(host: Any) -> None:
    STATE.host = host
    STATE.library.folders = embedding_folders(Path(host.settings.models_dir))
    STATE.library.allow_pickle = bool(getattr(host.settings, "allow_pickle", False))


@hookimpl
def shutdown(host: Any) -> None:
    if STATE.host is host:  # its folders and pickle permission leave with it
        STATE.host = None
        STATE.library.folders = []
        STATE.library.allow_pickle = False


@hookimpl
def register_extra_networks(register: Any) -> None:
    register(ExtraNetworkSpec(name=NAME, activate=activate, list_cards=list_cards, title="Textual Inversion"))


def model_widths(components: dict[str, Any], family: str | None) -> dict[str, int] | None:
    """The input-embedding width of each CLIP text encoder, by the file key it takes."""
    if family not in CLIP_FAMILIES:
        return None
    widths = {}
    for key, component in COMPONENTS.items():
        encoder = components.get(component)
        if encoder is not None and hasattr(encoder, "get_input_embeddings"):
            widths[key] = int(encoder.get_input_embeddings().embedding_dim)
    return widths or None


def fits(embedding: Embedding, widths: dict[str, int]) -> bool:
    """A1111's ``expected_shape`` test: the same encoders, each of the same width."""
    return set(embedding.vectors) == set(widths) and all(
        int(v.shape[-1]) == widths[k] for k, v in embedding.vectors.items()
    )


@hookimpl
def model_loaded(model: Any) -> None:
    STATE.widths = model_widths(getattr(model, "components", {}), getattr(model, "family", None))


def activate(ctx: GenerationContext, params_list: list[ExtraNetworkParams]) -> None:
    """Once per request, before the prompt is encoded: every embedding that fits."""
    for params in params_list:
        ctx.warnings.append(f"{params.tag}: embeddings are used by name, without a tag; the tag was removed")
    if ctx.model is None:
        return
    widths = model_widths(ctx.model.components, ctx.family)
    if widths is None:
        return
    STATE.widths = widths
    for name, embedding in STATE.library.scan().embeddings.items():
        if fits(embedding, widths):
            ctx.prompt_embeddings[name] = PromptEmbedding(
                name=name,
                vectors={COMPONENTS[k]: v for k, v in embedding.vectors.items()},
                hash=embedding.hash,
                path=str(embedding.path),
            )


def list_cards() -> list[ExtraNetworkCard]:
    listing = STATE.library.scan()
    cards = [
        ExtraNetworkCard(
            name=e.name,
            prompt=e.name,
            family=e.family,
            path=str(e.path),
            preview=preview_beside(e.path),
            description=f"{e.count} vector(s)",
            hash=e.hash,
        )
        for e in listing.embeddings.values()
    ]
    return sorted(cards, key=lambda card: card.name.casefold())


def a1111_listing() -> dict[str, Any]:
    """``GET /sdapi/v1/embeddings``: A1111's ``{"loaded": {...}, "skipped": {...}}``, where
    "skipped" are the embeddings that do not fit the last model used."""
    loaded, skipped = {}, {}
    for name, embedding in sorted(STATE.library.scan().embeddings.items(), key=lambda i: i[0].casefold()):
        fitting = STATE.widths is None or fits(embedding, STATE.widths)
        (loaded if fitting else skipped)[name] = embedding.a1111()
    return {"loaded": loaded, "skipped": skipped}


@hookimpl
def register_api_routes(router: Any) -> None:
    @router.get("/sdapi/v1/embeddings", summary="Textual-inversion embeddings (A1111)")
    def embeddings() -> dict[str, Any]:
        return a1111_listing()
