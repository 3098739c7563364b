"""The hooks Easel calls. Extensions implement any subset of them with ``@hookimpl``.

An implementation may take any subset of a hook's arguments, by name, as pluggy allows.
The host calls implementations one at a time, in load order (``tryfirst``/``trylast``
move one to the front or back), and isolates each: an implementation that raises is
reported with its extension's name and skipped; the others still run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pluggy

from plugin_api.types import (
    GenerationContext,
    GenerationRequest,
    GenerationResult,
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

    Called once per host start, after every extension is loaded. Return value ignored.
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

    Called once per host start, after every extension is loaded. Return value ignored.
    """


@hookspec
def register_preprocessors(register: Callable[[PreprocessorSpec], None]) -> None:
    """Add control-image preprocessors (canny, depth, ...).

    :param register: call ``register(PreprocessorSpec(...))`` once per preprocessor.
        ``process(image, **options)`` takes and returns a PIL image; the ControlNet
        extension passes ``threshold_a``, ``threshold_b`` (``None`` = your default) and
        ``resolution``, so accept ``**options``. ``needs_weights`` names files that must
        be in ``models/ControlNet/annotators`` (a request is refused while one is missing).

    Called once per host start, after every extension is loaded. Return value ignored.
    """


@hookspec
def register_interrogators(register: Callable[[InterrogatorSpec], None]) -> None:
    """Add image captioners for ``/sdapi/v1/interrogate`` and the WebUI's Interrogate buttons.

    :param register: call ``register(InterrogatorSpec(...))`` once per captioner. A request
        names one by its ``name`` or an A1111 alias (``"clip"``, ``"deepdanbooru"``); among
        several for an alias, the first that can run (``missing()`` is None, ``for_models``
        fits the current model) answers, in registration order.

    Called once per host start, after every extension is loaded. Return value ignored.
    """


@hookspec
def register_api_routes(router: Any) -> None:
    """Add HTTP routes to the server.

    :param router: a ``fastapi.APIRouter`` included in the app at the root path, before
        the WebUI is mounted. Use paths under ``/<extension name>/`` or ``/sdapi/v1/``.
        The routes sit behind the same guards as the host's own: ``--api-auth`` (HTTP
        basic auth) when it is set, the Host-header check and, for state changes, the
        origin check. ``plugin_api.testing.serve`` runs them in your tests.

    Called once per server start (``easel serve``), when the app is built. Return value
    ignored.
    """


@hookspec
def ui_tabs(host: Any) -> list[tuple[str, Callable[[], Any]] | Tab]:
    """Contribute WebUI tabs.

    Return a list of tabs, each a ``(title, build)`` pair or a ``Tab``; ``build()`` is
    called inside a ``gradio.Tab`` (Gradio 6, the version pinned in ``requirements.lock``)
    and creates the tab's components (a ``build`` that takes one argument gets
    ``generate(request)``, which queues a generation; one with a parameter named ``host``
    gets the host: see ``Tab``). Results of all extensions are concatenated in load order.
    A tab whose ``build`` raises is replaced by an error panel naming the extension.

    :param host: the started host (``host.get_setting``, ``host.set_setting``...).
        Optional (API 1.8): an implementation that does not name it does not get it.

    Called once each time the WebUI is built (once per ``easel serve``).
    """


@hookspec
def register_settings(register: Callable[[SettingSpec], None]) -> None:
    """Declare user settings (shown in the Settings tab, stored by the host).

    :param register: call ``register(SettingSpec(key="myext.option", default=...))``.
        Read the current value in a generation hook as ``ctx.settings["myext.option"]``,
        in ``validate_request`` from its ``settings`` argument, elsewhere with
        ``host.get_setting(key)``; ``host.set_setting(key, value)`` changes it (checked
        against the spec and saved in ``<data dir>/state/settings.json``; ``KeyError`` for
        an unknown key, ``ValueError`` for a refused value). Users change settings in the
        Settings tab and with ``POST /sdapi/v1/options``. A setting that names a file
        or folder declares ``path="file"`` or ``"folder"``: the host then refuses any
        value outside its folder, and ``host.setting_path(key)`` gives the resolved path.
        Strings with control characters (NUL...) are refused for every setting.

    Called once per host start, after every extension is loaded. Return value ignored.
    """


# --- per generation, in this order ------------------------------------------------------


@hookspec
def validate_request(request: GenerationRequest, family: str, settings: Mapping[str, Any]) -> None:
    """Check this extension's part of a request (``request.extension_args``) before it is
    queued and again before it runs; no model is loaded yet.

    Raise ``plugin_api.InvalidRequest(field, message)`` to refuse the request: it
    becomes the host's ``RequestError`` (HTTP 422 in the APIs, before anything is queued).
    Any other exception is reported and ignored. Do not edit the request here.

    :param request: the request with the core's defaults filled in.
    :param family: the model family that will run it (``"sd15"``, ``"sdxl"``...).
    :param settings: the user settings, read-only (as ``ctx.settings``; API 1.8).
        Optional: an implementation that does not name it does not get it.

    Called twice per queued request (at submit, and when its job starts) and once per
    in-process generation (``easel generate --local``, ``run_generation``), in load
    order. Return value ignored.
    """


@hookspec
def transform_prompt(request: GenerationRequest, ctx: GenerationContext) -> None:
    """Rewrite the prompt before it is encoded (translation, LoRA tags, wildcards...).

    A chain in load order: edit ``request.prompt`` / ``request.negative_prompt`` (or other
    fields) in place; the next implementation sees the result. Each change is recorded in
    ``ctx.prompt_transforms`` and the original prompt goes into the image metadata.

    Per image (API 1.8): ``ctx.seeds`` are drawn before the chain, and ``ctx.prompts`` /
    ``ctx.negative_prompts`` hold one prompt per image (``[request.prompt] * n`` at
    first). Set an entry to give one image its own prompt (wildcards, dynamic prompts,
    prompt matrix); choose from ``ctx.seeds[i]`` to make the choice reproducible. An
    implementation that edits ``request.prompt`` but not the lists has its edit applied to
    every image, as long as no earlier link made the images' prompts differ; after that a
    request-level edit is kept out of the per-image prompts with a warning, so a hook that
    sets per-image prompts is best ordered last (``@hookimpl(trylast=True)``). Each
    image's infotext records its own prompt (``Transformed prompt``) and seed.

    Raise ``plugin_api.InvalidRequest`` to refuse the request (a 422 naming the field).

    :param request: the mutable request; ``request.seed`` is the drawn base seed.
    :param ctx: the generation context (``ctx.family``, ``ctx.seeds``, ``ctx.prompts``,
        ``ctx.settings`` are set; the model is not loaded).

    Called once per generation, before the model is loaded; for a request submitted to
    the queue (API, WebUI) also once at submit with ``ctx.dry_run`` True, on a copy that
    is thrown away, so that a refusal is a 422 before anything is queued (skip expensive
    work that cannot refuse when ``ctx.dry_run``). Return value ignored.
    """


@hookspec
def model_loaded(ctx: GenerationContext | None, model: Any) -> None:
    """A model was loaded into memory (not called when it comes from the cache).

    Called once per fresh load: by a generation that needed it, or by a preload
    (``ctx`` None); never for a cached model. Return value ignored.

    :param ctx: the generation that caused the load, or ``None`` (preloading).
    :param model: the loaded model: ``.name``, ``.family``, ``.path`` and
        ``.components`` (a dict of torch modules: ``unet``/``transformer``, ``vae``,
        ``text_encoder``..., and ``scheduler``).
    """


@hookspec
def before_sample(ctx: GenerationContext) -> None:
    """The model is ready and sampling is about to start (apply adapters, prepare control
    images...). ``ctx.model``, ``ctx.seeds``, ``ctx.prompts`` and ``ctx.total_steps`` are
    set.

    Called once per generation (not per batch), in load order. Return value ignored.
    Raising ``plugin_api.InvalidRequest`` stops the generation with a ``RequestError``
    (e.g. an add-on model that does not fit the loaded model): the job fails with the
    field in its error, and ``/sdapi/v1`` answers 422.
    """


@hookspec
def denoiser_kwargs(ctx: GenerationContext, step: StepState) -> dict[str, Any] | None:
    """Extra keyword arguments for the denoiser call at this step (ControlNet residuals).

    Called once per sampling step of every batch (and of the hires pass), in load order,
    before the denoiser runs; ``step.latents`` holds the scaled model input (CFG batch
    included, see ``StepState``), ``step.timestep`` the denoiser's timestep, and
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

    Called once per sampling step of every batch (and of the hires pass), after the
    scheduler step, in load order; keep it fast. ``step.latents`` is the images' new
    latent (see ``StepState``). An implementation that raises is disabled for the rest of
    that generation. Return value ignored.
    """


@hookspec
def after_sample(ctx: GenerationContext, images: list[Any]) -> list[Any] | None:
    """Images were decoded and are about to be saved (post-processing, upscaling).

    Called once per batch (``batch_count`` times per request, with that batch's
    ``batch_size`` images), as a chain in load order: return a new list of PIL images to
    replace the images the next implementation sees, or ``None`` to keep them. What it
    puts in ``ctx.results`` / ``ctx.extra_params`` reaches the infotexts of this batch's
    images.
    """


@hookspec
def image_saved(ctx: GenerationContext, path: str) -> None:
    """An image file was written (atomically, with its metadata) at ``path``.

    Called once per image written (not with ``save_images=False``, nor for an image a
    retried job had already written), in load order. Return value ignored.
    """


@hookspec
def generation_finished(ctx: GenerationContext, result: GenerationResult) -> None:
    """A request finished: every batch ran (or it was interrupted: ``result.interrupted``)
    and its images were saved.

    Called once per request (not per batch), in load order, after the last
    ``image_saved``, with the ``GenerationResult`` the caller gets. Put structured output
    in ``ctx.results[<extension name>]``: what is there now reaches the native job
    result and ``/sdapi/v1`` ``info.extra_generation_params`` (the infotexts are written
    already). Return value ignored.
    """


@hookspec
def generation_failed(ctx: GenerationContext, error: BaseException) -> None:
    """A request stopped with an error after its context was made (release what
    ``before_sample`` took, report).

    Called once per failed request, in load order, with the exception the caller gets:
    the host's ``RequestError`` (an ``InvalidRequest``, e.g. a refusal from
    ``transform_prompt`` or ``before_sample``), ``OutOfMemory``, a model that cannot be
    loaded... Not called when ``validate_request`` refuses (no context exists yet), nor
    for a ``ctx.dry_run`` check. Return value ignored.
    """


# --- lifecycle ---------------------------------------------------------------------------


@hookspec
def startup(host: Any) -> None:
    """The host started and every extension is registered.

    :param host: ``host.settings`` (paths, device: the ``Settings`` from the command
        line / ``EASEL_*``), the user settings with ``host.get_setting(key)``,
        ``host.set_setting(key, value)`` and ``host.setting_path(key)`` (see
        ``register_settings``), ``host.samplers``/``host.upscalers``/``host.preprocessors``
        (name -> spec).

    Called once per host start, after the ``register_*`` hooks, in load order. Return
    value ignored.
    """


@hookspec
def shutdown(host: Any) -> None:
    """The host is stopping (release files, threads, GPU memory).

    Called once per host stop, in load order. Return value ignored.
    """
