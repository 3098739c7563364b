"""The public data types that hooks receive.

Everything here is plain data (dataclasses), so extensions never need to import the
engine. The host fills these in; extensions read them and, where a hook says so, edit
them in place.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class GenerationRequest:
    """One generation as a user asked for it, shared by every front end.

    ``None`` in ``steps``, ``cfg_scale``, ``late_cfg_scale``, ``late_cfg_start``, ``width``,
    ``height`` and ``sampler`` means "the model's recommendation (its ``easel.json``), else
    the model family's default". ``transform_prompt`` implementations edit ``prompt`` and
    ``negative_prompt`` in place.
    """

    prompt: str = ""
    negative_prompt: str = ""
    seed: int = -1  # -1 picks a random seed; the seed used is reported in the result
    steps: int | None = None
    cfg_scale: float | None = None
    # a second CFG scale for the late, low-noise part of sampling: the steps from
    # ``late_cfg_start`` (a fraction of the schedule, 0-1) on use ``late_cfg_scale``. Strong
    # guidance decides early on what is drawn and where; late, it over-draws small details
    # (the demo model's triangles turn into stars). None in both: one scale throughout.
    late_cfg_scale: float | None = None
    late_cfg_start: float | None = None
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
    clip_skip: int = 1
    # img2img / inpainting: images are PIL images (the API decodes base64 for you)
    init_image: Any | None = None
    denoising_strength: float = 0.75
    mask: Any | None = None
    mask_blur: int = 4
    inpaint_full_res: bool = False  # A1111's "only masked"
    inpaint_full_res_padding: int = 32
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
    output_format: str = "png"  # png | jpeg | webp
    save_images: bool = True
    # step caching (core/sampling/step_cache.py), off unless asked: {"method": "fbcache" |
    # "magcache" | "taylorseer" | "deepcache" | "off", "threshold": number}; the string
    # forms "deepcache:3" and "deepcache 3" (the infotext's) are accepted too
    cache: dict[str, Any] | str | None = None
    # per-extension arguments, keyed by extension name (A1111's alwayson_scripts)
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
    ``state[<extension name>]`` and add A1111-style infotext fields (``"Lora hashes"``)
    to ``extra_params``.
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
    seeds: list[int] = field(default_factory=list)
    total_steps: int = 0
    prompt_transforms: list[PromptTransform] = field(default_factory=list)
    extra_params: dict[str, str] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # set by the host; extensions may call ctx.is_cancelled() in long work
    is_cancelled: Callable[[], bool] = field(default=lambda: False, repr=False)


@dataclass
class StepState:
    """The sampling loop's state at one step (given to denoiser_kwargs and on_step)."""

    step: int  # 0-based index of the step
    total_steps: int
    timestep: float
    sigma: float | None = None
    latents: Any | None = None  # torch.Tensor; read-only by convention
    denoised: Any | None = None  # the model's x0 estimate after this step, if known
    preview: Any | None = None  # a cheap PIL preview, when the host made one
    elapsed_s: float = 0.0

    @property
    def fraction(self) -> float:
        """How far through sampling this step is, from 0.0 to 1.0."""
        return self.step / max(1, self.total_steps)

    @property
    def eta_s(self) -> float:
        done = self.step + 1
        if done <= 0 or math.isclose(self.elapsed_s, 0.0):
            return 0.0
        return self.elapsed_s / done * (self.total_steps - done)


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
    # "models": the models folder. Read the resolved path with ``host.setting_path(key)``.
    path: str | None = None
    path_root: str = "data"


@dataclass
class Tab:
    """A WebUI tab from ui_tabs: ``build()`` creates Gradio components inside the tab.

    A ``build`` that takes one argument receives ``generate(request) -> {"images": [PIL
    images], "infotexts": [str], "error": str | None}``: it queues a ``GenerationRequest``
    as a job (the same queue as txt2img) and waits for it, so a tab can offer its own
    Generate button (the ControlNet tab does).
    """

    title: str
    build: Callable[..., Any]
    elem_id: str | None = None
