"""The hooks Easel calls. Extensions implement any subset of them with ``@hookimpl``.

An implementation may take any subset of a hook's arguments, by name, as pluggy allows.
The host calls implementations one at a time, in load order (``tryfirst``/``trylast``
move one to the front or back), and isolates each: an implementation that raises is
reported with its extension's name and skipped; the others still run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

from plugin_api.extra_networks import ExtraNetworkSpec
from plugin_api.types import (
    GenerationContext,
    GenerationRequest,
    InterrogatorSpec,
    PreprocessorSpec,
    SamplerSpec,
    SettingSpec,
    StepState,
    Tab,
    UpscalerSpec,
)

PROJECT_NAME = "easel"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# --- registration: called once at start-up, after every extension is loaded ----------


@hookspec
def register_samplers(register: Callable[[SamplerSpec], None]) -> None:
    """Add samplers to the sampler list.

    :param register: call ``register(SamplerSpec(...))`` once per sampler. A name that is
        already taken is refused (reported, not raised) so built-ins cannot be replaced
        by accident.

    Return value ignored.
    """


@hookspec
def register_upscalers(register: Callable[[UpscalerSpec], None], host: Any) -> None:
    """Add upscalers (used by hires fix, the Extras tab and ``/sdapi/v1/extra-*``).

    :param register: call ``register(UpscalerSpec(...))`` once per upscaler.
    :param host: the host being started: ``host.settings`` says where the models are
        (``models_dir``) and whether pickle files may be loaded (``allow_pickle``), so
        an extension can register one upscaler per model file
        (``plugin_api.model_folders.model_folders(models_dir, "ESRGAN")`` lists A1111's
        and ComfyUI's folders of a kind). Optional: an
        implementation that does not name it does not get it.

    Return value ignored.
    """


@hookspec
def register_preprocessors(register: Callable[[PreprocessorSpec], None]) -> None:
    """Add control-image preprocessors (canny, depth, ...).

    :param register: call ``register(PreprocessorSpec(...))`` once per preprocessor.
        ``process(image, **options)`` takes and returns a PIL image; the ControlNet
        extension passes ``threshold_a``, ``threshold_b`` (``None`` = your default) and
        ``resolution``, so accept ``**options``. ``needs_weights`` names files that must
        be in ``models/ControlNet/annotators`` (a request is refused while one is missing).

    Return value ignored.
    """


@hookspec
def register_interrogators(register: Callable[[InterrogatorSpec], None]) -> None:
    """Add image captioners for ``/sdapi/v1/interrogate`` and the WebUI's Interrogate buttons.

    :param register: call ``register(InterrogatorSpec(...))`` once per captioner. A request
        names one by its ``name`` or an A1111 alias (``"clip"``, ``"deepdanbooru"``); among
        several for an alias, the first that can run (``missing()`` is None, ``for_models``
        fits the current model) answers, in registration order.

    Return value ignored.
    """


@hookspec
def register_extra_networks(register: Callable[[ExtraNetworkSpec], None]) -> None:
    """Add extra networks: ``<name:arg1:arg2>`` prompt tags and their handlers (A1111's
    ``register_extra_network``), plus the cards of the WebUI's browser.

    Called once at start-up, after every extension is loaded, in load order.

    :param register: call ``register(ExtraNetworkSpec(name=..., activate=...))`` once per
        tag name. A name that is already taken is refused (reported, not raised).

    Then, per request (see ``plugin_api.extra_networks``): the tags are taken out of the
    positive prompt before and again after the ``transform_prompt`` chain (recorded as
    that extension's prompt transform); ``activate(ctx, params_list)`` is called once for
    every registered network, right after ``before_sample`` (model loaded, seeds set,
    prompt not yet encoded), with the list of that network's tags in prompt order (empty
    when the prompt has none); ``deactivate(ctx)`` once after the request, however it
    ended. ``list_cards()`` is called when the browser or ``GET /api/v1/extra-networks``
    lists the cards.

    Return value ignored.
    """


@hookspec
def register_api_routes(router: Any) -> None:
    """Add HTTP routes to the server.

    :param router: a ``fastapi.APIRouter`` included in the app at the root path, before
        the WebUI is mounted. Use paths under ``/<extension name>/`` or ``/sdapi/v1/``.

    Return value ignored.
    """


@hookspec
def ui_tabs() -> list[tuple[str, Callable[[], Any]] | Tab]:
    """Contribute WebUI tabs.

    Return a list of tabs, each a ``(title, build)`` pair or a ``Tab``; ``build()`` is
    called inside a ``gradio.Tab`` and creates the tab's components (a ``build`` that takes
    one argument gets ``generate(request)``, which queues a generation: see ``Tab``). Results of all
    extensions are concatenated in load order. A tab whose ``build`` raises is replaced
    by an error panel naming the extension.
    """


@hookspec
def register_settings(register: Callable[[SettingSpec], None]) -> None:
    """Declare user settings (shown in the Settings tab, stored by the host).

    :param register: call ``register(SettingSpec(key="myext.option", default=...))``.
        Read the current value later with ``host.get_setting(key)``. A setting that names a
        file or folder declares ``path="file"`` or ``"folder"``: the host then refuses any
        value outside its folder, and ``host.setting_path(key)`` gives the resolved path.
        Strings with control characters (NUL...) are refused for every setting.

    Return value ignored.
    """


# --- per generation, in this order ------------------------------------------------------


@hookspec
def validate_request(request: GenerationRequest, family: str) -> None:
    """Check this extension's part of a request (``request.extension_args``) before it is
    queued and again before it runs; no model is loaded yet.

    Raise ``plugin_api.InvalidRequest(field, message)`` to refuse the request: it
    becomes the host's ``RequestError`` (HTTP 422 in the APIs, before anything is queued).
    Any other exception is reported and ignored. Do not edit the request here.

    :param request: the request with the core's defaults filled in.
    :param family: the model family that will run it (``"sd15"``, ``"sdxl"``...).

    Called in load order. Return value ignored.
    """


@hookspec
def transform_prompt(request: GenerationRequest, ctx: GenerationContext) -> None:
    """Rewrite the prompt before it is encoded (translation, LoRA tags, wildcards...).

    Called once per request, before the model is loaded, as a chain in load order: edit
    ``request.prompt`` / ``request.negative_prompt`` (or other fields) in place; the next
    implementation sees the result. Each change is recorded in
    ``ctx.prompt_transforms`` and the original prompt goes into the image metadata.

    :param request: the mutable request.
    :param ctx: the generation context (``ctx.family`` is already known).

    Return value ignored.
    """


@hookspec
def model_loaded(ctx: GenerationContext | None, model: Any) -> None:
    """A model was loaded into memory (not called when it comes from the cache).

    :param ctx: the generation that caused the load, or ``None`` (preloading).
    :param model: the loaded model: ``.name``, ``.family``, ``.path`` and
        ``.components`` (a dict of torch modules: ``unet``/``transformer``, ``vae``,
        ``text_encoder``..., and ``scheduler``).

    Return value ignored.
    """


@hookspec
def before_sample(ctx: GenerationContext) -> None:
    """The model is ready and sampling is about to start (apply adapters, prepare control
    images...). ``ctx.model``, ``ctx.seeds`` and ``ctx.total_steps`` are set.

    Called in load order. Return value ignored. Raising ``plugin_api.InvalidRequest``
    stops the generation with a ``RequestError`` (e.g. an add-on model that does not fit
    the loaded model).
    """


@hookspec
def denoiser_kwargs(ctx: GenerationContext, step: StepState) -> dict[str, Any] | None:
    """Extra keyword arguments for the denoiser call at this step (ControlNet residuals).

    Called every step, in load order, before the denoiser runs; ``step.latents`` holds
    the model input (CFG batch included), ``step.timestep`` the denoiser's timestep, and
    ``ctx.state["easel.denoiser_inputs"]`` the denoiser's other inputs for this batch:
    ``encoder_hidden_states`` (same batch order as the latents), ``added_cond_kwargs``
    (SDXL's ``text_embeds``/``time_ids``; empty for SD1.x) and ``cfg_batch`` (True: the
    batch is ``[uncond..., cond...]``, two halves of the images' size). Return a dict or ``None``. The dicts of all
    extensions are merged: where two give the same key, tensors (or lists/tuples of
    tensors, element-wise) are added, so two ControlNet-like extensions combine.
    """


@hookspec
def on_step(ctx: GenerationContext, step: StepState) -> None:
    """A sampling step finished (progress, previews, logging).

    Called every step in load order; keep it fast. An implementation that raises is
    disabled for the rest of that generation. Return value ignored.
    """


@hookspec
def after_sample(ctx: GenerationContext, images: list[Any]) -> list[Any] | None:
    """Images were decoded and are about to be saved (post-processing, upscaling).

    Called as a chain in load order: return a new list of PIL images to replace the
    images the next implementation sees, or ``None`` to keep them.
    """


@hookspec
def image_saved(ctx: GenerationContext, path: str) -> None:
    """An image file was written (atomically, with its metadata) at ``path``.

    Called once per image, in load order. Return value ignored.
    """


# --- lifecycle ---------------------------------------------------------------------------


@hookspec
def startup(host: Any) -> None:
    """The host started and every extension is registered.

    :param host: ``host.settings`` (paths, device), ``host.get_setting(key)``,
        ``host.samplers``/``host.upscalers``/``host.preprocessors`` (name -> spec).

    Called in load order. Return value ignored.
    """


@hookspec
def shutdown(host: Any) -> None:
    """The host is stopping (release files, threads, GPU memory). Return value ignored."""
