"""The public data types that hooks receive.

Everything here is plain data (dataclasses), so extensions never need to import the
engine. The host fills these in; extensions read them and, where a hook says so, edit
them in place.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass
class GenerationRequest:
    """One generation as a user asked for it, shared by every front end.

    ``None`` in ``steps``, ``cfg_scale``, ``late_cfg_scale``, ``late_cfg_start``, ``width``,
    ``height`` and ``sampler`` means "the model's recommendation (its ``easel.json``), else
    the model family's default". ``None`` in ``negative_prompt``, ``clip_skip``,
    ``output_format``, ``vae`` and ``model`` means "the user's setting"
    (``default_negative_prompt``, ``CLIP_stop_at_last_layers``, ``samples_format``,
    ``sd_vae``, ``sd_model_checkpoint``): the host fills them before validation, so every
    front end gets the same defaults. ``transform_prompt`` implementations edit ``prompt``
    and ``negative_prompt`` in place.
    """

    prompt: str = ""
    # None: the ``default_negative_prompt`` setting (empty unless the user set one)
    negative_prompt: str | None = None
    seed: int = -1  # -1 picks a random seed; the seed used is reported in the result
    steps: int | None = None
    cfg_scale: float | None = None
    # a second CFG scale for the late, low-noise part of sampling: the steps from
    # ``late_cfg_start`` (a fraction of the schedule, 0-1) on use ``late_cfg_scale``. Strong
    # guidance decides early on what is drawn and where; late, it over-draws small details
    # (the demo model's triangles turn into stars). None in both: one scale throughout.
    late_cfg_scale: float | None = None
    late_cfg_start: float | None = None
    # guidance-distilled models (FLUX.1-dev): the guidance value the model was distilled to
    # follow (Forge's "Distilled CFG Scale", diffusers' guidance_scale; one pass per step,
    # unlike CFG). None: the model's default (3.5); ignored, with a warning, by other models
    distilled_cfg_scale: float | None = None
    width: int | None = None
    height: int | None = None
    sampler: str | None = None
    # A1111's "Schedule type" ("Karras", "Exponential"... see /sdapi/v1/schedulers);
    # None or "Automatic": the sampler's own default
    scheduler: str | None = None
    # flow-matching models (Z-Image): the sigma shift; None = the model's own
    shift: float | None = None
    # A1111 prompt styles (names from styles.csv in the data folder), applied in order
    styles: list[str] = field(default_factory=list)
    model: str | None = None  # model name as listed by `easel models`; None = default
    # A1111's SD VAE: "Automatic" (a <checkpoint>.vae.safetensors beside it, else its own),
    # "None" (the checkpoint's own) or a VAE file name from models/VAE; None = the
    # ``sd_vae`` setting (default "Automatic")
    vae: str | None = None
    batch_size: int = 1  # images per sampling run
    batch_count: int = 1  # sampling runs, one after another (A1111's n_iter)
    clip_skip: int | None = None  # None: the ``CLIP_stop_at_last_layers`` setting (1)
    # img2img / inpainting: images are PIL images (the API decodes base64 for you)
    init_image: Any | None = None
    denoising_strength: float = 0.75
    mask: Any | None = None
    mask_blur: int = 4
    inpaint_full_res: bool = False  # A1111's "only masked"
    inpaint_full_res_padding: int = 32
    # A1111's "Masked content", what the masked area starts from: 0 "fill" (the image's
    # surrounding colours, blurred in), 1 "original", 2 "latent noise" (the seed's noise),
    # 3 "latent nothing" (zero latents). A1111's UI default is "original"; its API's is "fill".
    inpainting_fill: int = 1
    # hires fix (txt2img only, A1111's names): sample at width x height, upscale by
    # ``hr_scale`` (or to hr_resize_x x hr_resize_y), then an img2img pass at that size
    # with ``hr_second_pass_steps`` steps (0: ``steps``) and ``denoising_strength``.
    # ``hr_upscaler``: "Latent" (default), "Latent (nearest)"... or any registered upscaler.
    enable_hr: bool = False
    hr_scale: float = 2.0
    hr_upscaler: str | None = None
    hr_second_pass_steps: int = 0
    hr_resize_x: int = 0
    hr_resize_y: int = 0
    output_format: str | None = None  # png | jpeg | webp; None: the ``samples_format`` setting
    save_images: bool = True
    # step caching (core/sampling/step_cache.py), off unless asked: {"method": "fbcache" |
    # "magcache" | "taylorseer" | "deepcache" | "off", "threshold": number}; the string
    # forms "deepcache:3" and "deepcache 3" (the infotext's) are accepted too
    cache: dict[str, Any] | str | None = None
    # a script (A1111's "Script" dropdown, one per request: "X/Y/Z plot"...) that runs this
    # request as several generations (see ``ScriptSpec``); matched case-insensitively to a
    # registered script's name. ``script_args``: A1111's positional list, or a dict of the
    # script's named arguments (the native form). None: an ordinary generation.
    script_name: str | None = None
    script_args: list[Any] | dict[str, Any] = field(default_factory=list)
    # per-extension arguments, keyed by extension name. /sdapi/v1's
    # ``alwayson_scripts: {"<Name>": {"args": [...]}}`` arrives here as
    # ``extension_args["<name>"] == {"args": [...]}``: the script name is matched to a loaded
    # extension's name case-insensitively (spaces may stand for "_"), the value is kept whole
    extension_args: dict[str, Any] = field(default_factory=dict)

    @property
    def mode(self) -> str:
        """'txt2img', 'img2img' or 'inpaint'."""
        if self.init_image is None:
            return "txt2img"
        return "inpaint" if self.mask is not None else "img2img"


@dataclass
class PromptTransform:
    """One link of the transform_prompt chain, as recorded in the image metadata."""

    extension: str
    prompt_before: str
    prompt_after: str
    negative_before: str
    negative_after: str


@dataclass
class GenerationContext:
    """Everything about one generation in progress. One per request.

    Extensions read it in every per-generation hook. They may store their own state in
    ``state[<extension name>]``, add A1111-style infotext fields (``"Lora hashes"``) to
    ``extra_params`` (strings), and put structured results (JSON types) in
    ``results[<extension name>]``.

    "Extension name" everywhere means the name the host lists the extension under
    (``easel extensions list``, ``GET /api/v1/extensions``): its folder name, its ``.py``
    file's stem, or its entry point's name; as A1111 and Forge name extensions by folder.

    Per image: ``seeds``, ``prompts`` and ``negative_prompts`` have one entry per image of
    the request (``batch_size * batch_count``, image ``i`` is in batch ``i // batch_size``).
    The seeds are drawn before ``transform_prompt`` runs; ``prompts`` start as
    ``[request.prompt] * n`` and a ``transform_prompt`` implementation may set one prompt
    per image (wildcards, dynamic prompts: A1111's ``p.all_prompts`` / ``all_seeds``).
    What is in these lists after the ``transform_prompt`` chain is what is encoded for
    each image and recorded in its infotext.
    """

    request: GenerationRequest
    original_prompt: str
    original_negative_prompt: str
    job_id: str | None = None
    model_name: str | None = None
    family: str | None = None  # "sd15", "sdxl", "zimage", ...
    model: Any | None = None  # the loaded model handle (see model_loaded)
    device: str = "cpu"
    dtype: str = "float32"
    # one seed per image, drawn before transform_prompt (request.seed -1: a random base);
    # image i gets seeds[i] (A1111's all_seeds)
    seeds: list[int] = field(default_factory=list)
    # one prompt / negative prompt per image (A1111's all_prompts / all_negative_prompts)
    prompts: list[str] = field(default_factory=list)
    negative_prompts: list[str] = field(default_factory=list)
    total_steps: int = 0
    prompt_transforms: list[PromptTransform] = field(default_factory=list)
    extra_params: dict[str, str] = field(default_factory=dict)
    # textual-inversion embeddings for this request: name -> plugin_api.extra_networks.PromptEmbedding
    prompt_embeddings: dict[str, Any] = field(default_factory=dict)
    # structured results by extension name (JSON types): they reach the native job result
    # (``result.results``), /sdapi/v1 ``info.extra_generation_params`` and, when set before
    # an image is saved, its infotext (as ``<name>: <compact JSON>``)
    results: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # the user settings (``register_settings`` keys and the host's), read-only, as they
    # were when the generation started: ``ctx.settings.get("myext.option")``
    settings: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    # True while the host checks a request at submit time (see transform_prompt): nothing
    # is generated from this context, so skip expensive work that cannot refuse
    dry_run: bool = False
    # set by the host; extensions may call ctx.is_cancelled() in long work
    is_cancelled: Callable[[], bool] = field(default=lambda: False, repr=False)


@dataclass
class StepState:
    """The sampling loop's state at one step (given to denoiser_kwargs and on_step).

    ``latents`` is not the same tensor in both hooks:

    - in ``denoiser_kwargs`` (before the denoiser runs) it is the denoiser's input at this
      step: the current latents, doubled to ``[uncond..., cond...]`` when CFG is batched,
      and scaled by the scheduler's ``scale_model_input`` (divided by
      ``sqrt(sigma**2 + 1)`` for the Euler/DPM family); its batch is twice the images'.
    - in ``on_step`` (after the scheduler step) it is the new latent of the images (batch =
      images of this batch, not scaled): what the next step starts from, and after the
      last step what is decoded.

    Read it, do not modify it (the loop may reuse the tensor).
    """

    step: int  # 0-based index of the step in this sampling pass
    total_steps: int  # steps of this pass (the hires pass counts its own)
    timestep: float  # the denoiser's timestep (SD: from ~999 down to 0; flow matching: 1000 down)
    # the noise level of the latents entering this step, in the scheduler's units (the
    # ``sigmas`` of k-diffusion-style schedulers: ~14.6 at the start of SD1.5 down to 0;
    # flow matching: 1.0 to 0.0); None for schedulers without sigmas (DDIM, PNDM)
    sigma: float | None = None
    latents: Any | None = None  # torch.Tensor; see above; read-only by convention
    denoised: Any | None = None  # on_step: the model's x0 estimate at this step, if known
    preview: Any | None = None  # on_step: a cheap PIL preview, when the host made one
    # wall-clock seconds since this sampling pass started (of the current batch; the hires
    # pass starts its own clock): in denoiser_kwargs up to this step, in on_step including it
    elapsed_s: float = 0.0

    @property
    def fraction(self) -> float:
        """How far through sampling this step is, from 0.0 to 1.0."""
        return self.step / max(1, self.total_steps)

    @property
    def eta_s(self) -> float:
        """Estimated seconds left in this pass, from ``elapsed_s`` (0.0 before the first
        step is timed)."""
        done = self.step + 1
        if done <= 0 or math.isclose(self.elapsed_s, 0.0):
            return 0.0
        return self.elapsed_s / done * (self.total_steps - done)


@dataclass
class DenoiserCall:
    """One denoiser call with classifier-free guidance, as the sampling-maths hooks see it.

    The same object goes through ``before_denoiser`` -> (the denoiser) -> ``after_denoiser``
    -> (CFG) -> ``after_cfg`` for one call; the host fills the prediction fields as it goes.
    Tensors are torch tensors on the model's device. To change one, assign a new tensor
    of the same shape (``call.x = call.x * 0.9``), do not edit it in place: the host
    restores an extension's fields when it fails, which it can do only for assignments.

    With CFG (``cfg_batch`` True) the batch of ``x``, ``encoder_hidden_states`` and
    ``added_cond_kwargs`` is ``[uncond..., cond...]``: two halves of the images' size.
    Without (CFG scale 1 and no late CFG) it holds the cond half alone, ``uncond_pred``
    stays None and ``cfg_scale`` is not used.
    """

    step: int  # 0-based index of the sampling step this call belongs to
    total_steps: int
    timestep: float  # the denoiser's timestep for this call
    sigma: float | None  # the noise level (k-diffusion's sigma; flow models: 0-1), if known
    # the denoiser's latent input, scaled by the scheduler (inpainting UNets' extra mask
    # channels are appended after the hooks, so they never appear here)
    x: Any
    encoder_hidden_states: Any  # the text conditioning, same batch order as ``x``
    added_cond_kwargs: dict[str, Any]  # SDXL's text_embeds/time_ids; empty for SD1.x
    denoiser_kwargs: dict[str, Any]  # the merged results of denoiser_kwargs hooks
    cfg_scale: float  # the CFG scale this call combines with (per step: late CFG applied)
    cfg_batch: bool
    # what the denoiser predicts: "epsilon", "v_prediction" or "flow" (a velocity)
    prediction_type: str = "epsilon"
    uncond_pred: Any | None = None  # set from after_denoiser on: the uncond half
    cond_pred: Any | None = None  # ... and the cond half (the whole batch without CFG)
    prediction: Any | None = None  # set for after_cfg: the combined prediction


@dataclass
class SamplingNoise:
    """The noise a sampling pass starts from, given to ``prepare_noise``.

    ``noise`` has the latents' shape, one image per seed, each drawn from its own CPU
    generator (float32, unit variance, on the model's device). txt2img starts from
    ``noise`` times the first sigma; img2img, inpainting and the hires pass mix it into
    ``init_latents`` at the strength's noise level (A1111's "extra noise" point), and
    inpainting re-noises the kept area with it at every step.
    """

    noise: Any
    seeds: list[int]
    init_latents: Any | None = None  # the image's latents (img2img, hires); None: txt2img
    strength: float = 1.0  # denoising strength (1.0 for txt2img)
    hires: bool = False  # True in the hires fix's second pass


@dataclass
class SamplerSpec:
    """A sampler as registered through register_samplers.

    ``make_scheduler(base_config)`` returns a diffusers scheduler built from the model's
    own scheduler config (a dict), e.g. ``EulerDiscreteScheduler.from_config(cfg)``. Pass
    the dict to ``from_config`` whole: its ``_use_default_values`` entry tells diffusers
    which keys the model's file never set, so the new class keeps its own defaults there.
    ``flow`` marks samplers for flow-matching families (Z-Image, Flux). The host sets the
    request's schedule type (Karras, Exponential...) as diffusers options in that config
    (``use_karras_sigmas``, ``timestep_spacing``...): do not override those in
    ``from_config``'s keyword arguments, or the schedule type cannot apply.

    A sampler with its own stepping function sets ``sample`` as well, with k-diffusion's
    signature, and the host runs it instead of the scheduler's ``step`` (which is then
    never called: ``make_scheduler`` only provides the schedule, e.g. Euler's, to which
    the request's schedule type applies). The host calls
    ``sample(model, x, sigmas, extra_args={}, callback=..., disable=True)``, adding
    ``noise_sampler`` when the function takes it:

    - ``x``: the start latents, the same as the scheduler's samplers start from
      (txt2img: the noise times the scheduler's ``init_noise_sigma``, which is
      ``sigmas[0]`` except for diffusers' "leading" timestep spacing, where it is
      ``sqrt(sigmas[0]**2 + 1)``; img2img: the image noised to ``sigmas[0]``); ``sigmas``: a float32 tensor of the pass's noise levels,
      ending with 0 (flow models: sigmas from 1 to 0);
    - ``model(x, sigma)`` returns the denoised estimate (x0) of ``x`` at noise level
      ``sigma`` (a float or a tensor of one value per image): the host scales the input,
      runs every sampling-maths hook and CFG, and converts the prediction (epsilon, v or
      flow velocity) to x0, so one function serves every model family;
    - ``callback({"x", "i", "sigma", "denoised"})`` after each step ``i``: the host's
      progress, previews, ``on_step`` hooks and cancellation ride on it;
    - ``noise_sampler(sigma, sigma_next)`` returns fresh unit noise drawn from the
      images' own seeded generators (use it, not ``torch.randn``, so a seed repeats).
    """

    name: str
    make_scheduler: Callable[[dict[str, Any]], Any]
    aliases: tuple[str, ...] = ()
    flow: bool = False
    # A1111's sampler options as /sdapi/v1/samplers lists them; "scheduler" is the
    # schedule type "Automatic" means for this sampler ("karras", "exponential")
    options: dict[str, Any] = field(default_factory=dict)
    # set when the sampler only approximates the algorithm its name stands for: why, and
    # what runs instead (every result made with it carries this as a warning)
    note: str = ""
    # optional: a stepping function of its own, k-diffusion's form
    # ``sample(model, x, sigmas, extra_args=None, callback=None, disable=None, **kw) -> x``
    # (see SamplerSpec's docstring); None: the scheduler's ``step`` does the stepping
    sample: Callable[..., Any] | None = None


@dataclass
class UpscalerSpec:
    """An upscaler as registered through register_upscalers.

    ``upscale(image, scale)`` takes and returns a PIL image.
    """

    name: str
    upscale: Callable[[Any, float], Any]
    scale: float | None = None  # native scale of a model-based upscaler


@dataclass
class InterrogatorSpec:
    """An image captioner (A1111's "interrogate") as registered by extensions.

    ``interrogate(image)`` takes a PIL RGB image and returns the caption. ``aliases`` are
    the A1111 model names it answers to (``"clip"``, ``"deepdanbooru"``); its own ``name``
    always works. ``missing()`` returns None when it can run, else what to install (weights,
    a package): the request is then refused with that text, or the next interrogator for
    the same alias is tried. ``for_models``: answer an alias only while one of these models
    is the current one (a captioner that knows one model's world); empty means any model.
    """

    name: str
    interrogate: Callable[[Any], str]
    aliases: tuple[str, ...] = ()
    missing: Callable[[], str | None] | None = None
    for_models: tuple[str, ...] = ()
    note: str = ""  # shown in listings: what it captions and how


@dataclass
class PreprocessorSpec:
    """A control-image preprocessor (canny, depth...) as registered by extensions."""

    name: str
    process: Callable[..., Any]  # (PIL image, **options) -> PIL image
    needs_weights: tuple[str, ...] = ()


@dataclass
class SettingSpec:
    """A user setting an extension registers; it appears in the Settings tab and API."""

    key: str  # "zh_prompt.mode": namespaced by the extension
    default: Any
    label: str = ""
    choices: tuple[Any, ...] | None = None
    description: str = ""
    # A setting that names a file or folder ("file" | "folder"). Its value is data, not a
    # free path: it is resolved inside ``path_root`` and anything that lands outside is
    # refused. "data": <data dir>/<extension>/ (the part of ``key`` before the dot);
    # "models": the models folder; "outputs": the outputs folder (API 1.9). Read the
    # resolved path with ``host.setting_path(key)``.
    path: str | None = None
    path_root: str = "data"


@dataclass
class Tab:
    """A WebUI tab from ui_tabs: ``build()`` creates Gradio components inside the tab.

    A ``build`` that takes one argument receives ``generate(request) -> {"images": [PIL
    images], "infotexts": [str], "error": str | None}``: it queues a ``GenerationRequest``
    as a job (the same queue as txt2img) and waits for it, so a tab can offer its own
    Generate button (the ControlNet tab does). A parameter named ``host`` receives the host
    (API 1.8: ``host.get_setting(key)``, ``host.set_setting(key, value)``...), so a tab
    needs no module global: ``def build(host)``, ``def build(generate, host)``.
    A ``build`` may return ``{"send_to_image": <gr.Image>}`` (API 1.9): the result galleries
    of txt2img and img2img then get a "Send to" button that puts their selected image into
    that component and shows the tab (the Extras tab does this). ``host.save_extras_image(
    image, info, source_info)`` (API 1.9) saves a postprocessed image as A1111's Extras does.
    """

    title: str
    build: Callable[..., Any]
    elem_id: str | None = None


@dataclass
class GenerationResult:
    """What a generation gives back (``plugin_api.testing.run_generation`` returns it; the
    ``generation_finished`` hook receives it): the images of one request with everything
    needed to show and reproduce them. Lists are per image, in order."""

    images: list[Any]  # PIL images, in order
    seeds: list[int]  # one per image
    infotexts: list[str]  # A1111 `parameters` text, one per image
    paths: list[str] = field(default_factory=list)  # written files, when saved
    parameters: dict[str, Any] = field(default_factory=dict)  # the request as run
    prompt: str = ""  # the prompt the model saw (after transform_prompt)
    negative_prompt: str = ""
    original_prompt: str = ""
    original_negative_prompt: str = ""
    # per image, what was encoded for it (ctx.prompts / ctx.negative_prompts after the chain)
    prompts: list[str] = field(default_factory=list)
    negative_prompts: list[str] = field(default_factory=list)
    extra_params: dict[str, str] = field(default_factory=dict)  # ctx.extra_params
    results: dict[str, Any] = field(default_factory=dict)  # ctx.results, by extension name
    warnings: list[str] = field(default_factory=list)
    interrupted: bool = False
    elapsed_s: float = 0.0


FORM_TABS = ("txt2img", "img2img")


@dataclass
class FormSection:
    """An accordion inside the txt2img and/or img2img form (A1111's "AlwaysVisible"
    scripts), from ``ui_form_sections`` (API 1.9).

    ``build()`` is called inside the accordion and returns the components whose values the
    section sends, in order (A1111's ``Script.ui()``). A ``build`` with a parameter named
    ``tab`` gets ``"txt2img"`` or ``"img2img"`` (prefix your ``elem_id``s with it: the
    section is built once per tab), one named ``host`` gets the host.

    At Generate the host reads those components' values and calls ``to_args(values)``
    (``values``: a list in ``build``'s order; images as PIL images). What it returns goes
    into ``request.extension_args[<extension name>]`` exactly as the APIs carry it:

    - a list: A1111's positional ``alwayson_scripts[<name>]["args"]``; the request gets
      ``{"args": [...]}``, which is what ``/sdapi/v1`` clients sending
      ``"alwayson_scripts": {"<name>": {"args": [...]}}`` produce;
    - a dict: the native API's ``extension_args[<name>]`` as it is;
    - ``None``: nothing (the section is off).

    Images in it become base64 PNG strings (what API clients send), tuples lists, so your
    hooks read one shape whichever front end asked. Without ``to_args`` the values list
    itself is the args. Raise ``plugin_api.InvalidRequest(field, message)`` in
    ``to_args`` to refuse a generation with a message for the user.
    """

    title: str
    build: Callable[..., Any]
    to_args: Callable[[list[Any]], Any] | None = None
    # the forms it appears in: "txt2img", "img2img" or both
    tabs: tuple[str, ...] = FORM_TABS
    # model families ("sd15", "sdxl", "zimage"...) it is shown for; empty: every family.
    # While hidden (another family's model is chosen) it sends nothing; while the family
    # is unknown (no model listed) it is shown.
    families: tuple[str, ...] = ()
    open: bool = False  # the accordion starts open
    elem_id: str | None = None  # default: "<tab>_section_<extension>"

    def shown_for(self, family: str | None) -> bool:
        return family is None or not self.families or family in self.families


@dataclass
class ScriptContext:
    """What a script's ``validate`` and ``run`` get from the host (see ``ScriptSpec``).

    ``generate(request, part=i, parts=n)`` runs one ordinary generation (a "cell") inside
    the script's job, as if it had been queued alone: every per-generation hook, saving
    with its own infotext in ``outputs/txt2img-images`` (or img2img's), the same images.
    Progress reads as batch ``i*batch_count + b`` of ``n*batch_count`` (A1111's
    ``job_no``/``job_count`` during a script); a cancel interrupts the cell in progress and
    the result comes back with ``interrupted`` True; the script should then stop.
    ``check(request)`` validates one generation request without running it (the host's
    checks and every extension's ``validate_request``; ``InvalidRequest`` naming the
    field) and returns a copy with the defaults filled in (model, steps, sampler, size...).
    ``save_grid(image, infotext, seed, basename)`` writes a grid image to
    ``outputs/txt2img-grids/<date>/<basename>-NNNN-<seed>.png`` (img2img-grids for
    img2img), A1111's grid names, atomically, with ``infotext`` as its ``parameters``
    (``basename``: letters, digits and "_"); it returns the path, or None when the request
    does not save images (``save_images`` False).
    """

    generate: Callable[..., GenerationResult]
    check: Callable[[GenerationRequest], GenerationRequest]
    save_grid: Callable[..., str | None]
    is_cancelled: Callable[[], bool] = field(default=lambda: False, repr=False)
    # the user settings, read-only (as ``GenerationContext.settings``)
    settings: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    job_id: str | None = None


@dataclass
class ScriptSpec:
    """A script as registered through ``register_scripts`` (API 1.9): A1111's selectable
    scripts (``script_name``/``script_args``), which turn one request into several
    generations and combine their results (X/Y/Z plot, prompt matrix...).

    - ``name``: A1111's title ("X/Y/Z plot"); ``/sdapi/v1/scripts`` lists it lower-cased,
      and a request's ``script_name`` matches it (or an alias) case-insensitively.
    - ``arg_names``: the names of A1111's positional ``script_args``, in order: the host
      turns a list into a dict by position (a shorter list leaves the rest to the script's
      defaults; a longer one is refused), and a dict arrives as it is, so the script reads
      one shape.
    - ``validate(request, args, ctx)``: refuse bad arguments with ``InvalidRequest``
      (naming ``script_args.<name>``) before anything is queued; it may call
      ``ctx.check`` for the generations it would run. Called at submit and again when the
      job starts; ``ctx.generate`` must not be called here.
    - ``run(request, args, ctx)``: make the generations with ``ctx.generate`` and return
      one ``GenerationResult`` (images in the order clients get them; their ``paths``,
      ``seeds`` and ``infotexts`` aligned with them).
    - ``modes``: the request modes it serves ("txt2img", "img2img").
    - ``form``: its controls in the WebUI (A1111's ``Script.ui()``): a ``FormSection``
      whose ``build`` makes them, shown under the txt2img/img2img form while the "Script"
      dropdown names this script; at Generate its ``to_args(values)`` gives the request's
      ``script_args`` (a dict by name, or A1111's positional list; ``InvalidRequest`` to
      refuse). Its ``title``, ``families`` and ``open`` are not used; ``tabs`` says which
      forms list the script. None: the script is listed and sends no arguments.
    """

    name: str
    run: Callable[[GenerationRequest, dict[str, Any], ScriptContext], GenerationResult]
    validate: Callable[[GenerationRequest, dict[str, Any], ScriptContext], None] | None = None
    arg_names: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    modes: tuple[str, ...] = ("txt2img", "img2img")
    description: str = ""
    form: FormSection | None = None
