"""Host settings: paths, device and switches, from CLI flags and ``EASEL_*`` variables.

Precedence: an explicit argument, then the environment variable, then the default.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BUNDLED_EXTENSIONS_DIR = PROJECT_ROOT / "extensions"
SHIPPED_MODELS_DIR = PROJECT_ROOT / "models"
# Folders in extensions/ that ship with Easel; anything else there was installed by a
# user. `--safe-mode` loads only these. (A list, not an import: core never imports
# the extensions package.)
BUNDLED_EXTENSION_NAMES = (
    "zh_prompt",
    "lora",
    "controlnet",
    "esrgan",
    "interrogate",
    "embeddings",
    "cfg_rescale",
    "freeu",
    "xyz_plot",
)
MODEL_CONFIGS_DIR = Path(__file__).resolve().parent / "model_configs"
# core/models/memory_modes.py explains them; here so that the CLI can list them without torch
MEMORY_MODE_CHOICES = ("auto", "full", "tiled-vae", "model-offload", "sequential-offload")


def env_flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str) -> list[str]:
    """A comma-separated variable as a list (empty entries dropped)."""
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def env_paths(name: str) -> list[Path]:
    value = os.environ.get(name, "")
    return [Path(p).expanduser() for p in value.split(os.pathsep) if p.strip()]


def _positive(name: str, kind: type, default: float, zero: bool = False) -> float:
    """A number from an EASEL_* variable; a bad one is an error naming the variable."""
    from core.errors import SettingError

    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingError(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        raise SettingError(f"{name}={raw!r} must be {'>= 0' if zero else '> 0'}")
    return value


@dataclass
class Settings:
    """Everything the host needs to know before it loads anything."""

    data_dir: Path = field(default_factory=lambda: PROJECT_ROOT)
    models_dir: Path = field(default_factory=lambda: SHIPPED_MODELS_DIR)
    extension_dirs: list[Path] = field(default_factory=list)  # besides the bundled folder
    safe_mode: bool = False  # load bundled extensions only
    disabled_extensions: set[str] = field(default_factory=set)  # for this run only
    trace_hooks: bool = False
    # a hook called during a job that runs longer than this fails the job, naming the
    # extension (0: no limit; core/plugins/hook_guard.py says what can and cannot be done)
    extension_hook_timeout_s: float = 300.0
    # an extension that killed or hung the worker this many times is quarantined (not
    # loaded until `easel extensions enable NAME`); one crash at import is enough
    extension_crash_limit: int = 2
    # the WebUI's uploads (in <data dir>/.easel/uploads): 413 past this many MB (ui/uploads.py)
    upload_quota_mb: float = 1024.0
    allow_pickle: bool = False  # pickle checkpoints (.ckpt/.pt/.bin), weights_only=True
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    host: str = "127.0.0.1"
    port: int = 7860
    api_auth: str | None = None  # "user:password" enables HTTP Basic auth
    allow_remote_install: bool = False  # installing extensions while listening publicly
    # Host names answered besides localhost/127.0.0.1/[::1] ("*": any; core/api/origin.py)
    allowed_hosts: list[str] = field(default_factory=list)
    # origins allowed to call from a browser page on another site (CORS)
    cors_allow_origins: list[str] = field(default_factory=list)
    # /sdapi/v1/server-stop and -kill (A1111's --api-server-stop): any API caller could
    # stop the server, so off unless asked for
    allow_server_control: bool = False
    # the accelerated path (core/models/acceleration.py); "auto" = on where it pays off
    compile: str = "auto"  # auto | off | regional | full
    channels_last: str = "auto"  # auto | on | off
    fuse_qkv: bool = False  # ignores LoRAs on q/k/v: opt-in
    cuda_graphs: bool = False  # torch.compile mode "reduce-overhead"
    fp8: bool = False  # FP8 linear layers in the denoiser: lossy, for Ada/Hopper GPUs
    # live preview every N steps (0 = auto: every step on the CPU, where a step is slow
    # and the preview free; every 5th on a GPU, where making one waits for the GPU)
    preview_every: int = 0
    # auto (from free device memory) | full | tiled-vae | model-offload | sequential-offload
    # (core/models/memory_modes.py)
    memory_mode: str = "auto"
    # images of a job named <job id>-<index>-<seed> instead of A1111's next number: set by
    # `easel worker`, whose jobs may run again after a worker died (saved once, not twice)
    job_image_names: bool = False
    # several workers on one queue (core/jobs/queue.py explains both bounds)
    lease_s: float = 30.0  # a dead worker's job is claimed again this long after its last heartbeat
    max_attempts: int = 3  # runs started before a job is failed as a poison job
    affinity_passes: int = 3  # times the head of the queue may be passed over for a loaded model
    # where a worker leaves its images for the API node: "shared-folder" (the outputs
    # folder, mounted on every machine) or "db" (their bytes in the queue; core/jobs/result_images.py)
    result_images: str = "shared-folder"
    result_image_max_mb: float = 64.0  # --result-images db: one image's bound in the queue

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Settings from ``EASEL_*`` variables; keyword arguments that are not None win."""
        settings = cls()
        if "EASEL_DATA_DIR" in os.environ:
            settings.data_dir = Path(os.environ["EASEL_DATA_DIR"]).expanduser()
        if "EASEL_MODELS_DIR" in os.environ:
            settings.models_dir = Path(os.environ["EASEL_MODELS_DIR"]).expanduser()
        settings.extension_dirs = env_paths("EASEL_EXTENSIONS_DIR")
        settings.safe_mode = env_flag("EASEL_SAFE_MODE")
        settings.trace_hooks = env_flag("EASEL_TRACE_HOOKS")
        settings.extension_hook_timeout_s = _positive(
            "EASEL_EXTENSION_HOOK_TIMEOUT_S", float, settings.extension_hook_timeout_s, zero=True
        )
        settings.upload_quota_mb = _positive("EASEL_UPLOAD_QUOTA_MB", float, settings.upload_quota_mb)
        settings.extension_crash_limit = _positive(
            "EASEL_EXTENSION_CRASH_LIMIT", int, settings.extension_crash_limit
        )
        settings.allow_pickle = env_flag("EASEL_ALLOW_PICKLE")
        settings.allow_remote_install = env_flag("EASEL_ALLOW_REMOTE_INSTALL")
        settings.allow_server_control = env_flag("EASEL_API_SERVER_STOP")
        settings.device = os.environ.get("EASEL_DEVICE", settings.device)
        settings.host = os.environ.get("EASEL_HOST", settings.host)
        settings.port = int(os.environ.get("EASEL_PORT", settings.port))
        settings.api_auth = os.environ.get("EASEL_API_AUTH") or None
        settings.allowed_hosts = env_list("EASEL_ALLOWED_HOSTS")
        settings.cors_allow_origins = env_list("EASEL_CORS_ALLOW_ORIGINS")
        settings.compile = os.environ.get("EASEL_COMPILE", settings.compile).strip().lower()
        settings.channels_last = os.environ.get("EASEL_CHANNELS_LAST", settings.channels_last).strip().lower()
        settings.fuse_qkv = env_flag("EASEL_FUSE_QKV")
        settings.cuda_graphs = env_flag("EASEL_CUDA_GRAPHS")
        settings.fp8 = env_flag("EASEL_FP8")
        settings.preview_every = int(os.environ.get("EASEL_PREVIEW_EVERY", settings.preview_every))
        settings.memory_mode = os.environ.get("EASEL_MEMORY_MODE", settings.memory_mode).strip().lower()
        settings.job_image_names = env_flag("EASEL_JOB_IMAGE_NAMES")
        settings.lease_s = _positive("EASEL_LEASE_S", float, settings.lease_s)
        settings.max_attempts = _positive("EASEL_MAX_ATTEMPTS", int, settings.max_attempts)
        settings.affinity_passes = _positive(
            "EASEL_AFFINITY_PASSES", int, settings.affinity_passes, zero=True
        )
        from core.jobs.result_images import max_image_bytes, result_images_mode

        settings.result_images = result_images_mode(None)  # an unknown value names the variable
        settings.result_image_max_mb = max_image_bytes(None) / (1024 * 1024)
        disabled = os.environ.get("EASEL_DISABLE", "")
        settings.disabled_extensions = {n.strip() for n in disabled.split(",") if n.strip()}
        for key, value in overrides.items():
            if value is None:
                continue
            if not hasattr(settings, key):
                raise TypeError(f"unknown setting {key!r}")
            if key == "extension_dirs":
                value = [*settings.extension_dirs, *value]  # flags add to the variable
            if key == "disabled_extensions":
                value = settings.disabled_extensions | set(value)
            setattr(settings, key, value)
        settings.data_dir = Path(settings.data_dir).resolve()
        settings.models_dir = Path(settings.models_dir).resolve()
        return settings

    @property
    def outputs_dir(self) -> Path:
        return self.data_dir / "outputs"

    @property
    def state_dir(self) -> Path:
        """Where the host keeps its own files (queue database, extension state)."""
        return self.data_dir / ".easel"

    @property
    def listens_publicly(self) -> bool:
        return self.host not in {"127.0.0.1", "localhost", "::1"}

    @property
    def install_allowed(self) -> bool:
        """Installing extensions runs code: only on loopback, unless explicitly allowed."""
        return not self.listens_publicly or self.allow_remote_install
