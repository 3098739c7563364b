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

from plugin_api.extra_networks import ExtraNetworkSpec
from plugin_api.types import (
    DenoiserCall,
    FormSection,
    GenerationContext,
    GenerationRequest,
    GenerationResult,
    InterrogatorSpec,
    PreprocessorSpec,
    SamplerSpec,
    SamplingNoise,
    ScriptSpec,
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

    A sampler is a diffusers scheduler (``make_scheduler``) or, with ``SamplerSpec.sample``
    (API 1.8), a stepping function of its own in k-diffusion's form, run by the host
    with CFG and the sampling-maths hooks inside its ``model`` (see ``SamplerSpec``).

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
def register_extra_networks(register: Callable[[ExtraNetworkSpec], None]) -> None:
    """Add extra networks: ``<name:arg1:arg2>`` prompt tags and their handlers (A1111's
    ``register_extra_network``), plus the cards of the WebUI's browser.

    Called once per host start, after every extension is loaded, in load order.

    :param register: call ``register(ExtraNetworkSpec(name=..., activate=...))`` once per
        tag name. A name that is already taken is refused (reported, not raised).

    Then, per request (see ``plugin_api.extra_networks``): the tags are taken out of the
    positive prompt before the ``transform_prompt`` chain and out of the per-image prompts
    after it (the first image's tags apply to the whole request, as A1111's
    ``parse_prompts``; recorded as that extension's prompt transform); ``activate(ctx, params_list)`` is called once for
    every registered network, right after ``before_sample`` (model loaded, seeds set,
    prompt not yet encoded), with the list of that network's tags in prompt order (empty
    when the prompt has none); ``deactivate(ctx)`` once after the request, however it
    ended. ``list_cards()`` is called when the browser or ``GET /api/v1/extra-networks``
    lists the cards.

    Return value ignored.
    """


@hookspec
def register_scripts(register: Callable[[ScriptSpec], None]) -> None:
    """Add scripts: A1111's selectable scripts (``script_name`` + ``script_args``), which
    run one request as several generations in one job and combine the results (the
    bundled X/Y/Z plot). API 1.9.

    :param register: call ``register(ScriptSpec(...))`` once per script. A name that is
        already taken is refused (reported, not raised).

    A request that names a script is validated by the script (``ScriptSpec.validate``)
    when it is submitted and queued as one job; the worker then calls ``ScriptSpec.run``
    with a ``ScriptContext`` whose ``generate`` runs each generation with every
    per-generation hook, in that job (one progress bar, one cancel).

    In the WebUI the scripts are the "Script" dropdown at the bottom of the txt2img /
    img2img form; ``ScriptSpec.form`` (a ``FormSection``: ``build`` + ``to_args``, API
    1.9) gives a script its controls there, and ``to_args`` their ``script_args``.

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
def ui_form_sections(host: Any, tab: str) -> list[FormSection]:
    """Contribute accordions to the txt2img / img2img generation form (A1111's
    "AlwaysVisible" scripts: ControlNet units, ADetailer...), API 1.9.

    Return a list of ``FormSection``s. Each section whose ``tabs`` include ``tab`` is
    built inside an accordion of that form; at Generate its components' values go through
    its ``to_args`` into ``request.extension_args[<extension name>]``, in the same shape
    ``/sdapi/v1``'s ``alwayson_scripts[<name>]["args"]`` (or the native
    ``extension_args``) gives, so your generation hooks read one shape from every front
    end. A section is shown only while the chosen model's family is in its ``families``
    (empty: always). A ``build`` that raises is replaced by an error panel naming the
    extension, and the rest of the form works. Results of all extensions are concatenated
    in load order; one section per extension and tab (a second is reported and left out).

    :param host: the started host (``host.get_setting``...). Optional.
    :param tab: ``"txt2img"`` or ``"img2img"``: the form being built. Optional.

    Called once per generation form (txt2img, then img2img) each time the WebUI is built.
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


# --- the sampling maths: per sampling pass, then per denoiser call -----------------------
#
# One sampling pass (a batch's txt2img/img2img pass, and again its hires-fix pass) runs:
#   patch_denoiser (entered) -> prepare_noise -> for every denoiser call:
#   denoiser_kwargs -> before_denoiser -> denoiser -> after_denoiser -> CFG -> after_cfg
#   -> the sampler's step -> on_step (once per step) ... -> patch_denoiser (exited).
# "Every denoiser call" means every real call: a second-order sampler calls the denoiser
# twice per step; a step-cache that skips the denoiser for a step skips these hooks too.
# They run in Python around the denoiser, never inside it: with torch.compile (regional
# or full) the compiled graphs stay whole; only a patch_denoiser patch that changes
# modules inside a compiled region costs a recompile (see there). A pass with no
# implementation of a hook pays one check per call for it, nothing more.


@hookspec
def patch_denoiser(ctx: GenerationContext, denoiser: Any) -> Any:
    """Patch the denoiser for one sampling pass (ComfyUI's model patches: FreeU, attention
    changes...). Return a context manager, or ``None`` to leave the model alone.

    Called once per sampling pass (each batch's pass, and the hires-fix pass after it),
    in load order, before ``prepare_noise``; the host enters each returned context
    manager before the first step and exits it after the last, also when the pass fails,
    is interrupted or skipped, so a patch (torch forward hooks, swapped attention
    processors, set attributes) never outlives its pass. Undo in ``__exit__`` exactly
    what ``__enter__`` did.

    :param denoiser: the model's denoiser module (``unet`` or ``transformer``, as in
        ``ctx.model.components``); shared by every request: patch it only inside the
        context manager.

    Cost with ``torch.compile``: forward hooks or attributes added to a module inside a
    compiled region change what the graph guards on, so that region recompiles on the
    first patched call (and the unpatched graph is reused after ``__exit__``); patch
    modules outside the compiled blocks where you can. Return value: a context manager
    or ``None``; anything else is reported and ignored.
    """


@hookspec
def prepare_noise(ctx: GenerationContext, noise: SamplingNoise) -> None:
    """Change the noise a sampling pass starts from (A1111's initial noise and
    ``on_extra_noise``): assign ``noise.noise`` a tensor of the same shape.

    Called once per sampling pass, in load order (a chain: each implementation sees the
    noise the previous one left), after ``patch_denoiser`` and before the first step.
    In txt2img the pass starts from this noise times the first sigma; in img2img,
    inpainting and the hires pass it is mixed into ``noise.init_latents`` at the
    strength's noise level. Noise the sampler draws during the steps (ancestral and SDE
    samplers) is not this noise: a sampler with its own stepping function controls that
    (``SamplerSpec.sample``). Return value ignored.
    """


@hookspec
def before_denoiser(ctx: GenerationContext, call: DenoiserCall) -> None:
    """Change the denoiser's inputs or the CFG scale for one call (A1111's
    ``on_cfg_denoiser``).

    Called once per denoiser call, in load order (a chain), after ``denoiser_kwargs``
    and just before the denoiser runs. Assign new values to ``call.x`` (the scaled
    latent input, CFG batch ``[uncond..., cond...]``), ``call.encoder_hidden_states``,
    ``call.added_cond_kwargs``, ``call.denoiser_kwargs`` or ``call.cfg_scale`` (the CFG
    scale of this step: per-step guidance schedules). Shapes must not change: a
    replaced tensor of another shape counts as the extension's failure. Return value
    ignored. An implementation that raises is disabled for the rest of the generation
    and its changes to ``call`` are undone.
    """


@hookspec
def after_denoiser(ctx: GenerationContext, call: DenoiserCall) -> None:
    """Change the denoiser's predictions before CFG combines them (A1111's
    ``on_cfg_denoised``, ComfyUI's pre-CFG functions).

    Called once per denoiser call, in load order (a chain), right after the denoiser:
    ``call.uncond_pred`` and ``call.cond_pred`` hold the two halves of the prediction
    (without CFG: ``cond_pred`` alone), in the model's convention
    (``call.prediction_type``). Assign new tensors of the same shape to change what CFG
    combines. Return value ignored; failures are handled as in ``before_denoiser``.
    """


@hookspec
def after_cfg(ctx: GenerationContext, call: DenoiserCall) -> None:
    """Change the guided prediction (A1111's ``on_cfg_after_cfg``, ComfyUI's post-CFG
    functions: CFG rescale, dynamic thresholding).

    Called once per denoiser call, in load order (a chain), after CFG combined
    ``call.uncond_pred`` and ``call.cond_pred`` with ``call.cfg_scale`` into
    ``call.prediction`` (``uncond + scale * (cond - uncond)``; without CFG it is
    ``cond_pred``) and before the sampler steps with it. Assign ``call.prediction`` a
    tensor of the same shape; the halves stay readable. Return value ignored; failures
    are handled as in ``before_denoiser``.
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
