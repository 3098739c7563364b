"""LoRA for Easel: ``<lora:name:weight>`` prompt tags (A1111 syntax) and a structured
``extension_args["lora"] = {"loras": [{"name", "weight"}]}`` field; LoRA files from
``models/Lora`` hot-swapped onto the loaded model (see ``adapters``); A1111's
``Lora hashes`` infotext field; a LoRA browser tab.

Built only on ``plugin_api``: ``startup``/``shutdown`` (where the models folder is),
``register_extra_networks`` (the host takes the ``<lora:...>`` tags out of the prompt and
calls ``activate`` once per request: adapters on, or all off for a request without
LoRA; ``list_cards`` for the browser), ``validate_request`` and ``ui_tabs``.

A LoRA that cannot apply (unknown name, wrong family, keys that match nothing, corrupt
or pickle file) does not fail the request: the image is made without it, a warning
naming the file and the problem goes into ``result.warnings``, and the infotext does
not claim it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from extensions.lora.adapters import LoraApplyError, PoolRegistry
from extensions.lora.library import LORA_FOLDER, LoraFileError, LoraLibrary
from extensions.lora.syntax import (
    LoraSyntaxError,
    LoraUse,
    check_extension_args,
    format_tag,
    from_extension_args,
    parse_tag_args,
)
from plugin_api.errors import InvalidRequest
from plugin_api.extra_networks import ExtraNetworkCard, ExtraNetworkParams, ExtraNetworkSpec, preview_beside
from plugin_api.hookspecs import hookimpl
from plugin_api.model_folders import model_folders
from plugin_api.types import GenerationContext, GenerationRequest, Tab

log = logging.getLogger("easel.lora")

NAME = "lora"
SHIPPED_LORA_DIR = Path(__file__).resolve().parents[2] / "models" / LORA_FOLDER


class _State:
    """The LoRA library (folders from the last host that started) and the adapter pools
    (per loaded model, so several hosts in one process share them safely)."""

    def __init__(self) -> None:
        self.host: Any = None
        self.library = LoraLibrary([SHIPPED_LORA_DIR])
        self.pools = PoolRegistry()


STATE = _State()


@hookimpl
def startup(host: Any) -> None:
    STATE.host = host
    # Lora/ and, in a ComfyUI models folder, loras/ (plugin_api.model_folders)
    models_dir = Path(host.settings.models_dir)
    user = model_folders(models_dir, LORA_FOLDER) or [models_dir / LORA_FOLDER]
    shipped = [] if any(f.resolve() == SHIPPED_LORA_DIR.resolve() for f in user) else [SHIPPED_LORA_DIR]
    STATE.library.folders = [*user, *shipped]


@hookimpl
def shutdown(host: Any) -> None:
    if STATE.host is host:
        STATE.host = None


@hookimpl
def register_extra_networks(register: Any) -> None:
    register(ExtraNetworkSpec(name=NAME, activate=activate, list_cards=list_cards, title="LoRA"))


def _uses(ctx: GenerationContext, params_list: list[ExtraNetworkParams]) -> list[LoraUse]:
    """The prompt's tags, then the structured field; problems become warnings."""
    uses, problems = [], []
    for params in params_list:
        try:
            if not params.items[0].strip():
                raise LoraSyntaxError(f"{params.tag}: a LoRA tag needs a name")
            uses.append(parse_tag_args(params.items[0], params.items[1:]))
        except LoraSyntaxError as exc:
            problems.append(str(exc))
    structured, more = from_extension_args(ctx.request.extension_args.get(NAME))
    merged: dict[str, LoraUse] = {}
    for use in [*uses, *structured]:
        merged[use.name.lower()] = use  # the same LoRA twice: the last mention wins
    ctx.warnings.extend(f"LoRA: {p}" for p in [*problems, *more])
    return list(merged.values())


def list_cards() -> list[ExtraNetworkCard]:
    return [
        ExtraNetworkCard(
            name=info.name,
            prompt=format_tag(info.name),
            family=info.family,
            path=str(info.path),
            preview=preview_beside(info.path),
            description=info.problem,
            hash=info.hash,
        )
        for info in STATE.library.scan()
    ]


@hookimpl
def validate_request(request: GenerationRequest, family: str) -> None:
    """Refuse bad structured LoRA arguments before a job exists (they used to run to the
    end and finish "done" with a warning). Prompt tags stay lenient, as in A1111."""
    for field, name in check_extension_args(request.extension_args.get(NAME)):
        try:
            STATE.library.find(name)
        except LoraFileError as exc:
            raise InvalidRequest(field, str(exc)) from None


def activate(ctx: GenerationContext, params_list: list[ExtraNetworkParams]) -> None:
    """Once per request, model loaded (the host's extra-network activation)."""
    ctx.state[NAME] = {"uses": _uses(ctx, params_list)}
    if ctx.model is None:
        return
    uses = [u for u in ctx.state[NAME]["uses"] if u.active]
    with STATE.pools.lock:
        if not uses:
            pool = STATE.pools.existing(ctx.model)
            if pool is not None:
                pool.deactivate()  # a plain request after a LoRA one: base model exactly
            return
        try:
            _apply(ctx, uses)
        except BaseException as exc:
            # the user learns that the LoRA was not applied; the log has the traceback
            ctx.warnings.append(f"LoRA not applied: {type(exc).__name__}: {exc}")
            ctx.extra_params.pop("Lora hashes", None)
            pool = STATE.pools.existing(ctx.model)
            if pool is not None:
                pool.deactivate()
            if not isinstance(exc, Exception):
                raise
            log.exception("LoRA not applied")


def families_fit(lora: str, model: str) -> bool:
    """Whether a LoRA guessed to be for ``lora`` may go onto a ``model`` model. Chroma and
    FLUX.2 keep FLUX.1's block names, so a LoRA's keys cannot always tell them apart; one
    that needs layers or shapes the model lacks is refused by the key check instead."""
    if lora in ("unknown", model):
        return True
    return {lora, model} == {"flux", "chroma"} or (lora == "flux" and model == "flux2")


def _apply(ctx: GenerationContext, uses: list[LoraUse]) -> None:
    try:
        pool = STATE.pools.for_model(ctx.model)
    except LoraApplyError as exc:
        ctx.warnings.append(f"LoRA not applied: {exc}")
        return
    found = []
    for use in uses:
        try:
            info = STATE.library.find(use.name)
        except LoraFileError as exc:
            ctx.warnings.append(f"LoRA {use.name!r} not applied: {exc}")
            continue
        if info.problem:
            ctx.warnings.append(f"LoRA {use.name!r} not applied: {info.problem}")
            continue
        if not families_fit(info.family, ctx.family):
            ctx.warnings.append(
                f"LoRA {use.name!r} not applied: {info.path} looks like a {info.family} LoRA, "
                f"the model {ctx.model_name!r} is {ctx.family}"
            )
            continue
        found.append((info, use))
    keep = {pool.key(info) for info, _ in found}
    chosen = []
    for info, use in found:
        try:
            chosen.append((pool.ensure(info, STATE.library.read, keep), use))
        except LoraApplyError as exc:
            ctx.warnings.append(f"LoRA {use.name!r} not applied: {exc}")
    pool.activate(chosen)
    if chosen:
        # A1111 writes the name as mentioned, without ':' and ',' (they would break the field)
        ctx.extra_params["Lora hashes"] = ", ".join(
            f"{use.name.replace(':', '').replace(',', '')}: {adapter.info.hash}" for adapter, use in chosen
        )
        ctx.state[NAME]["applied"] = [adapter.info.name for adapter, _ in chosen]


@hookimpl
def ui_tabs() -> list[Tab]:
    from extensions.lora.tab import build_tab

    return [Tab(title="LoRA", build=lambda: build_tab(STATE.library), elem_id="lora_tab")]
