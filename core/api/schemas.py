"""Pydantic models of the native API (``/api/v1``), so ``/docs`` shows every field.

Bounds here are the coarse ones every front end shares (types, NaN, sizes, lengths,
NUL bytes); the engine's ``validate`` checks the rest (multiples of 8, known sampler
and model) before anything is queued.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

MAX_PROMPT_CHARS = 20_000
MAX_NAME_CHARS = 256
MAX_SIDE = 4096
MAX_SEED = 2**63 - 1
# free-form JSON (extension_args, alwayson_scripts, script_args, override_settings): real
# arguments are a few levels deep (sd-webui-controlnet's units: 3)
MAX_JSON_DEPTH = 32


def no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("NUL bytes are not allowed")
    return value


def no_nul_anywhere(value: Any) -> Any:
    """Extension arguments are free-form JSON: refuse NUL bytes at any depth, and more
    than ``MAX_JSON_DEPTH`` levels of nesting. Walked with a stack, not recursion: JSON
    nested a few hundred deep used to end in a RecursionError (a 500) here and in every
    recursive function that later copies the arguments."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            no_nul(item)
        elif isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(item, dict):
                for key in item:
                    no_nul(str(key))
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)
    return value


PromptText = Annotated[str, StringConstraints(max_length=MAX_PROMPT_CHARS), AfterValidator(no_nul)]
Name = Annotated[str, StringConstraints(max_length=MAX_NAME_CHARS), AfterValidator(no_nul)]
ExtensionArgs = Annotated[dict[str, Any], AfterValidator(no_nul_anywhere)]
FreeJson = Annotated[Any, AfterValidator(no_nul_anywhere)]  # the same checks, any JSON value


class HiresFixFields(BaseModel):
    """A1111's hires-fix fields, the same in the native API and in /sdapi/v1/txt2img."""

    enable_hr: bool = Field(False, description="hires fix: upscale, then an img2img pass (txt2img)")
    hr_scale: float = Field(2.0, ge=1, le=4)
    hr_upscaler: Name | None = Field(
        None, description='"Latent" (default), "Latent (nearest)"... or an upscaler'
    )
    hr_second_pass_steps: int = Field(0, ge=0, le=150, description="0: the same as steps")
    hr_resize_x: int = Field(0, ge=0, le=MAX_SIDE, description="0: from hr_scale")
    hr_resize_y: int = Field(0, ge=0, le=MAX_SIDE)


class CacheFields(BaseModel):
    """Step caching (docs/speed.md): off unless asked."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    method: Literal["off", "fbcache", "magcache", "taylorseer", "deepcache"] = "off"
    threshold: float | None = Field(
        None,
        gt=0,
        le=10,
        description="fbcache/magcache: tolerance (0.05/0.06); taylorseer/deepcache: full step every N (3)",
    )


class JobRequest(HiresFixFields):
    """A generation job: GenerationRequest's fields; images as base64 (data URL allowed)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    prompt: PromptText = ""
    negative_prompt: PromptText | None = Field(
        None, description="None: the default_negative_prompt setting (empty unless set)"
    )
    seed: int = Field(-1, ge=-1, le=MAX_SEED, description="-1 picks a random seed")
    steps: int | None = Field(None, ge=1, le=500, description="None: the model family's default")
    cfg_scale: float | None = Field(None, ge=0, le=100)
    late_cfg_scale: float | None = Field(
        None, ge=0, le=100, description="CFG scale from late_cfg_start on; None: the model's recommendation"
    )
    distilled_cfg_scale: float | None = Field(
        None,
        ge=0,
        le=100,
        description="guidance-distilled models (FLUX.1-dev): Distilled CFG Scale; None: 3.5",
    )
    late_cfg_start: float | None = Field(
        None, ge=0, le=1, description="fraction of the schedule where late_cfg_scale takes over (0.5)"
    )
    width: int | None = Field(None, ge=8, le=MAX_SIDE)
    height: int | None = Field(None, ge=8, le=MAX_SIDE)
    sampler: Name | None = Field(None, description="a name from /api/v1/samplers")
    scheduler: Name | None = Field(
        None, description='schedule type ("Karras"...; /sdapi/v1/schedulers); None: "Automatic"'
    )
    shift: float | None = Field(None, gt=0, le=100, description="flow-matching models: sigma shift")
    styles: list[Name] = Field(default_factory=list, max_length=32, description="names from styles.csv")
    model: Name | None = Field(None, description="a name from /api/v1/models; None: the default")
    vae: Name | None = Field(
        None,
        description='"Automatic", "None" or a file from /sdapi/v1/sd-vae; None: the sd_vae setting (Automatic)',
    )
    batch_size: int = Field(1, ge=1, le=64)
    batch_count: int = Field(1, ge=1, le=100)
    clip_skip: int | None = Field(
        None, ge=1, le=12, description="None: the CLIP_stop_at_last_layers setting (1)"
    )
    init_image: str | None = Field(None, description="base64 image: img2img / inpainting source")
    denoising_strength: float = Field(0.75, ge=0, le=1)
    mask: str | None = Field(None, description="base64 image: white = repaint")
    mask_blur: int = Field(4, ge=0, le=256)
    inpaint_full_res: bool = False
    inpaint_full_res_padding: int = Field(32, ge=0, le=1024)
    output_format: Literal["png", "jpeg", "webp"] | None = Field(
        None, description="None: the samples_format setting (png)"
    )
    save_images: bool = True
    cache: CacheFields | None = Field(
        None, description='step caching, e.g. {"method": "deepcache", "threshold": 3}; None: off'
    )
    extension_args: ExtensionArgs = Field(default_factory=dict, description="per-extension arguments")
    script_name: Name | None = Field(
        None, description='a script from /sdapi/v1/scripts, e.g. "X/Y/Z plot": one job, several generations'
    )
    script_args: FreeJson = Field(
        default_factory=list,
        description='the script\'s arguments by name ({"x_type": "Seed", "x_values": "1, 2"}) or A1111\'s list',
    )
    priority: int = Field(0, ge=-100, le=100, description="higher runs first")


class JobProgress(BaseModel):
    step: int
    total_steps: int
    batch_index: int
    batch_count: int
    progress: float
    elapsed_s: float
    eta_s: float


class JobView(BaseModel):
    """A job as the API shows it (images as URLs, never inline)."""

    id: str
    kind: str
    status: Literal["queued", "running", "done", "failed", "cancelled", "interrupted"]
    priority: int
    attempts: int
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    progress: float
    queue_position: int | None = Field(None, description="1 = runs next; only for queued jobs")
    error: str | None = None
    request: dict[str, Any]
    result: dict[str, Any] | None = None
    images: list[str] = Field(default_factory=list, description="URLs of the result images")
    live: JobProgress | None = None


class JobAccepted(BaseModel):
    id: str
    status: str
    url: str
    events: str


class JobList(BaseModel):
    jobs: list[JobView]
    total: int


class ModelView(BaseModel):
    name: str
    title: str
    family: str
    format: str
    size: int
    hash: str
    path: str
    default: bool
    recommended: dict[str, Any] = Field(
        default_factory=dict, description="the model's own settings (its easel.json) for empty fields"
    )
    prediction: str | None = Field(None, description='"eps", "v" or "v+ztsnr"; None for flow models')
    prediction_source: str | None = Field(None, description="why (a yaml beside the file, a key...)")


class SamplerView(BaseModel):
    name: str
    aliases: list[str]
    flow: bool
    extension: str | None
    options: dict[str, Any] = Field(default_factory=dict, description="A1111's (scheduler: its Automatic)")
    nearest: str | None = Field(None, description="set when the name runs an approximation: what runs")


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    queued: int
    running: int
    current_job: str | None
    uptime_s: float


class WorkerView(BaseModel):
    """One worker of this server's queue (GET /api/v1/workers)."""

    id: str
    host: str
    pid: int
    device: str
    loaded_model: str | None = Field(description="the model of its last job, so the one it has loaded")
    current_job: str | None
    last_heartbeat: float = Field(description="Unix seconds")
    heartbeat_age_s: float = Field(0.0, description="seconds since its last heartbeat, by the queue's clock")
    alive: bool = Field(
        description="heartbeat within two leases (EASEL_LEASE_S); false: presumed dead, stale"
    )
    in_process: bool = Field(description="the worker thread of this server process")
    started_at: float
    jobs_done: int
    model_loads: int = Field(description="jobs that needed another model than its last one")
    draining: bool
