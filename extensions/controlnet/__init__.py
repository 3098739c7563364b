"""ControlNet for Easel: one or more control units per request (multi-ControlNet), each
with a control image, a preprocessor, a model from ``models/ControlNet``, a weight, a
start/end fraction of the sampling steps and a resize mode.

Built only on ``plugin_api``:

- ``register_preprocessors``: canny, binary, invert, scribble, shuffle, tile, blur (no
  weights) and controlnet-aux annotators (need files in ``models/ControlNet/annotators``);
  other extensions add more through the same hook, and units can use them;
- ``validate_request``: malformed units, unknown models or preprocessors, a ControlNet
  of another family, missing annotator weights and unreadable images are refused before
  the request is queued (the host's ``RequestError``: HTTP 422);
- ``before_sample``: load the ControlNets (shaped for and checked against the loaded
  UNet), fit and preprocess the control images;
- ``denoiser_kwargs``: every step, the residuals of the units whose [start, end] contains
  the step's fraction, weighted and summed; the core adds them to the UNet's skip
  connections. A unit with weight 0 is skipped, so the image equals the one without it;
- ``register_api_routes``: ``GET /controlnet/model_list``, ``/controlnet/module_list``,
  ``/controlnet/version``, ``POST /controlnet/detect`` (sd-webui-controlnet's shapes);
- ``ui_form_sections``: a ControlNet accordion in the txt2img and img2img forms (units
  with upload, preprocessor preview and settings), whose values reach the request as
  ``alwayson_scripts.controlnet.args`` would (``section.py``).

Families: SD1.x/SD2.x and SDXL (diffusers' ``ControlNetModel``), and FLUX.1 (diffusers'
``FluxControlNetModel``, Union ones included: ``flux.py``), through the same two hooks:
for Flux, ``before_sample`` encodes the control maps with the model's VAE and
``denoiser_kwargs`` returns ``controlnet_block_samples`` /
``controlnet_single_block_samples``, which the Flux family passes to its transformer.
Z-Image ControlNets
(diffusers' ``ZImageControlNetModel``) are listed but refused with a clear error: their
control path goes through the transformer's ``controlnet_block_samples`` and VAE-encoded
control latents, which this extension does not wire yet.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from extensions.controlnet import flux
from extensions.controlnet.control import PreparedUnit, image_to_control, residuals
from extensions.controlnet.library import CONTROLNET_FOLDER, ControlNetFileError, ControlNetLibrary
from extensions.controlnet.preprocessors import (
    ANNOTATORS_FOLDER,
    AnnotatorPool,
    PreprocessorWeightsMissing,
    builtin_specs,
    canonical_name,
)
from extensions.controlnet.units import (
    BALANCED,
    ControlUnit,
    fit_image,
    parse_units,
    pixel_perfect_resolution,
    resolve_image,
)
from plugin_api.errors import InvalidRequest
from plugin_api.hookspecs import hookimpl
from plugin_api.model_folders import model_folders
from plugin_api.types import FormSection, GenerationContext, GenerationRequest, PreprocessorSpec, StepState

log = logging.getLogger("easel.controlnet")

NAME = "controlnet"
SHIPPED_DIR = Path(__file__).resolve().parents[2] / "models" / CONTROLNET_FOLDER
DENOISER_INPUTS_KEY = "easel.denoiser_inputs"
SUPPORTED_FAMILIES = ("sd15", "sdxl", "flux")


class _State:
    """The ControlNet library and annotator folder of the last host that started."""

    def __init__(self) -> None:
        self.host: Any = None
        self.library = ControlNetLibrary([SHIPPED_DIR])
        self.annotators = AnnotatorPool(SHIPPED_DIR / ANNOTATORS_FOLDER)

    def preprocessors(self) -> dict[str, PreprocessorSpec]:
        registered = getattr(self.host, "preprocessors", None)
        if registered is not None and len(registered):
            return {spec.name: spec for spec in registered}  # a host Registry iterates specs
        return {spec.name: spec for spec in builtin_specs(self.annotators)}


STATE = _State()


@hookimpl
def startup(host: Any) -> None:
    STATE.host = host
    # ControlNet/ and, in a ComfyUI models folder, controlnet/ (plugin_api.model_folders)
    models_dir = Path(host.settings.models_dir)
    user = model_folders(models_dir, CONTROLNET_FOLDER) or [models_dir / CONTROLNET_FOLDER]
    same = any(f.resolve() == SHIPPED_DIR.resolve() for f in user)
    STATE.library.folders = user if same else [*user, SHIPPED_DIR]
    STATE.annotators.folder = user[0] / ANNOTATORS_FOLDER


@hookimpl
def shutdown(host: Any) -> None:
    if STATE.host is host:
        STATE.host = None


@hookimpl
def register_preprocessors(register: Any) -> None:
    for spec in builtin_specs(STATE.annotators):
        register(spec)


# --- per generation ----------------------------------------------------------------------


def find_preprocessor(unit: ControlUnit) -> PreprocessorSpec:
    specs = STATE.preprocessors()
    spec = specs.get(unit.preprocessor) or specs.get(canonical_name(unit.preprocessor))
    if spec is None:
        raise InvalidRequest(
            f"{unit.field}.module",
            f"unknown preprocessor {unit.preprocessor!r}; known: {', '.join(sorted(specs))}",
        )
    return spec


def check_unit(unit: ControlUnit, family: str) -> None:
    """Everything about a unit that can be checked without loading a model."""
    info = STATE.library.find(unit.model)
    if info is None:
        names = ", ".join(i.name for i in STATE.library.scan()) or "none"
        raise InvalidRequest(
            f"{unit.field}.model",
            f"no ControlNet named {unit.model!r} in models/ControlNet; available: {names}",
        )
    if info.problem:
        raise InvalidRequest(f"{unit.field}.model", info.problem)
    if info.family != family:
        raise InvalidRequest(
            f"{unit.field}.model",
            f"ControlNet {info.name!r} ({info.path.name}) is a {info.family} ControlNet; "
            f"the model used for this request is {family}: choose a {family} ControlNet",
        )
    if family not in SUPPORTED_FAMILIES:
        raise InvalidRequest(
            f"{unit.field}.model",
            f"{family} ControlNets are not supported by the controlnet extension yet "
            f"(supported: {', '.join(SUPPORTED_FAMILIES)})",
        )
    if info.family == flux.FLUX:
        try:  # refused before queueing; the loaded model's config decides again
            flux.union_mode(unit, info.num_mode, [])
        except ValueError as exc:
            raise InvalidRequest(f"{unit.field}.union_control_type", str(exc)) from exc
    spec = find_preprocessor(unit)
    if spec.needs_weights:
        try:
            STATE.annotators.require(spec.name, tuple(spec.needs_weights))
        except PreprocessorWeightsMissing as exc:
            raise InvalidRequest(f"{unit.field}.module", str(exc)) from exc


@hookimpl
def validate_request(request: GenerationRequest, family: str) -> None:
    units = [u for u in parse_units(request.extension_args.get(NAME)) if u.active]
    for unit in units:
        resolve_image(unit, request.init_image)  # txt2img: refused before queueing
        check_unit(unit, family)


def preprocess(unit: ControlUnit, width: int, height: int) -> Any:
    """The unit's control map at the generation size (fit first, then preprocess)."""
    spec = find_preprocessor(unit)
    resolution = unit.processor_res
    if unit.pixel_perfect:  # from the raw image, before fitting, as sd-webui-controlnet does
        resolution = pixel_perfect_resolution(unit.image, width, height, unit.resize_mode)
    fitted = fit_image(unit.image, width, height, unit.resize_mode)
    try:
        out = spec.process(
            fitted, threshold_a=unit.threshold_a, threshold_b=unit.threshold_b, resolution=resolution
        )
    except PreprocessorWeightsMissing as exc:
        raise InvalidRequest(f"{unit.field}.module", str(exc)) from exc
    out = out.convert("RGB")
    return out if out.size == (width, height) else out.resize((width, height))


@hookimpl
def before_sample(ctx: GenerationContext) -> None:
    ctx.state[NAME] = {"prepared": []}
    units = [u for u in parse_units(ctx.request.extension_args.get(NAME)) if u.active]
    if not units or ctx.model is None:
        return
    if ctx.family == flux.FLUX:
        ctx.state[NAME]["prepared"] = prepare_flux(ctx, units)
        return
    denoiser = ctx.model.components.get("unet")
    if denoiser is None:
        raise InvalidRequest(
            f"{units[0].field}.model", f"{ctx.family} models are not supported by ControlNet"
        )
    prepared = []
    req = ctx.request
    for unit in units:
        resolve_image(unit, req.init_image)
        check_unit(unit, ctx.family or "")
        info = STATE.library.find(unit.model)
        try:
            model = STATE.library.load(info, denoiser, ctx.model.device, denoiser.dtype)
        except ControlNetFileError as exc:
            raise InvalidRequest(f"{unit.field}.model", str(exc)) from exc
        image = preprocess(unit, req.width, req.height)
        control = image_to_control(image, ctx.model.device, denoiser.dtype)
        prepared.append(PreparedUnit(unit, model, control, image, vae_factor(ctx.model.components)))
        ctx.extra_params[f"ControlNet {unit.index}"] = unit.infotext()
    ctx.state[NAME]["prepared"] = prepared


def vae_factor(components: dict[str, Any]) -> int:
    vae = components.get("vae")
    return 2 ** (len(vae.config.block_out_channels) - 1) if vae is not None else 8


def prepare_flux(ctx: GenerationContext, units: list[ControlUnit]) -> list[flux.FluxPreparedUnit]:
    """FLUX.1 units: the ControlNets loaded for the transformer, the maps VAE-encoded."""
    components, req = ctx.model.components, ctx.request
    transformer, vae = components["transformer"], components["vae"]
    device, dtype = ctx.model.device, ctx.model.dtype
    prepared = []
    for unit in units:
        resolve_image(unit, req.init_image)
        check_unit(unit, ctx.family or "")
        if unit.control_mode != BALANCED:
            ctx.warnings.append(
                f"ControlNet {unit.index}: control mode {unit.control_mode!r} is an SD-UNet "
                "weighting with no FLUX.1 counterpart; the unit runs 'Balanced'"
            )
            unit.control_mode = BALANCED
        try:
            model = STATE.library.load(STATE.library.find(unit.model), transformer, device, dtype)
        except ControlNetFileError as exc:
            raise InvalidRequest(f"{unit.field}.model", str(exc)) from exc
        try:
            mode = flux.union_mode(unit, model.config.num_mode, ctx.warnings)
        except ValueError as exc:
            raise InvalidRequest(f"{unit.field}.union_control_type", str(exc)) from exc
        image = preprocess(unit, req.width, req.height)
        item = flux.FluxPreparedUnit(
            unit, model, image, mode, model.input_hint_block is not None, vae, device
        )
        factor = vae_factor(components)
        item.control(req.height // factor, req.width // factor)  # encoded now, not in the first step
        prepared.append(item)
        ctx.extra_params[f"ControlNet {unit.index}"] = unit.infotext()
    return prepared


@hookimpl
def denoiser_kwargs(ctx: GenerationContext, step: StepState) -> dict[str, Any] | None:
    prepared = (ctx.state.get(NAME) or {}).get("prepared")
    if not prepared:
        return None
    inputs = ctx.state[DENOISER_INPUTS_KEY]
    if ctx.family == flux.FLUX:
        config = ctx.model.components["transformer"].config
        return flux.samples(prepared, step.fraction, step.latents, step.timestep, inputs, config)
    return residuals(prepared, step.fraction, step.latents, step.timestep, inputs)


# --- API and WebUI -----------------------------------------------------------------------


@hookimpl
def register_api_routes(router: Any) -> None:
    from extensions.controlnet.api import add_routes

    add_routes(router, STATE)


@hookimpl
def ui_form_sections() -> list[FormSection]:
    from extensions.controlnet.section import build_section, to_args

    def build(tab: str) -> list[Any]:
        return build_section(STATE, tab)

    return [FormSection(title="ControlNet", build=build, to_args=to_args, families=SUPPORTED_FAMILIES)]
