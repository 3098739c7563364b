"""The model manager: list checkpoints, load them lazily, keep a bounded LRU cache.

Folders scanned (A1111 layout): ``<models-dir>/Stable-diffusion`` and, always, the shipped
``<repo>/models/Stable-diffusion`` (so the demo model is there). Entries are diffusers
folders (with ``model_index.json``) and single checkpoint files. A single file's shapes
come from a config folder: ``<file stem>.config/`` beside the file when it exists (a
diffusers folder with configs and tokenizers, or a full one), else the shipped real-size
config for the detected family in ``core/model_configs/<family>/``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

# Nothing may be downloaded at run time; huggingface_hub reads this when first imported
# (diffusers/transformers are imported lazily, after this module).
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from core.config import MODEL_CONFIGS_DIR, SHIPPED_MODELS_DIR, Settings
from core.errors import ModelError
from core.models.acceleration import AccelerationOptions, accelerate
from core.models.memory_modes import HEADROOM_BYTES, validate_mode
from core.models.recommended import read_recommended
from core.models.sizes import read_sizes
from plugin_api.scanning import scan_model_files
from core.families import FamilyAdapter, all_families, get_family
from core.families import flux_files, qwen_image_files, zimage_files
from core.families.unloaded_weights import refuse_meta
from core.families.sd15 import INPAINT_IN_CHANNELS
from core.models import comfyui
from core.models.files import (
    CHECKPOINT_SUFFIXES,
    HashCache,
    folder_digest,
    refuse_pickle_folder,
    weight_precision,
)
from core.models.header_cache import SummaryCache
from core.models.prediction import Prediction, detect_prediction, from_scheduler_config
from core.models.vae_files import VaeFile, VaeLibrary, is_beside_vae

log = logging.getLogger("easel.models")

DEMO_MODEL_NAME = "easel-demo"
CHECKPOINT_FOLDER = "Stable-diffusion"
CONFIG_SIDECAR_SUFFIX = ".config"
CLIP_TOKENIZER_DIR = MODEL_CONFIGS_DIR / "clip_tokenizer"
# T5 v1.1's tokenizer (32000 SentencePiece unigram pieces + 100 extra ids), stored once
T5_TOKENIZER_FILE = MODEL_CONFIGS_DIR / "t5_tokenizer" / "tokenizer.json"


@dataclass
class ModelInfo:
    """One loadable model as ``easel models`` lists it."""

    name: str
    family: str
    format: str  # diffusers | safetensors | gguf | pickle
    size: int  # bytes on disk
    hash: str  # A1111 short hash (10 hex)
    path: Path
    variant: str = ""  # "sd2" for an SD2 checkpoint of the sd15 family...
    native_size: int | None = None  # the size a diffusers folder's denoiser was made for
    # the model's own recommended settings (a folder's easel.json; core/models/recommended.py)
    recommended: dict[str, Any] = field(default_factory=dict)
    # epsilon or v-prediction, and why (core/models/prediction.py); None for flow models
    prediction: Prediction | None = None
    # the sizes the model was made for, from its easel.json (core/models/sizes.py)
    sizes: list[tuple[int, int]] = field(default_factory=list)
    precision: str = ""  # what most weights are stored in: "bf16", "fp8", "Q8_0"... ("" unknown)

    @property
    def inpainting(self) -> bool:
        """An inpainting checkpoint (9-channel UNet; core/sampling/inpaint_model.py)."""
        return self.variant.endswith("inpaint")

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "inpainting": self.inpainting,
            "format": self.format,
            "size": self.size,
            "precision": self.precision,
            "hash": self.hash,
            "path": str(self.path),
            "prediction": self.prediction.label if self.prediction else None,
            "prediction_source": self.prediction.source if self.prediction else None,
            "sizes": [list(size) for size in self.sizes],
        }


@dataclass
class LoadedModel:
    """A model in memory: what ``model_loaded`` hooks and ``ctx.model`` receive."""

    name: str
    family: str
    path: Path
    info: ModelInfo
    adapter: FamilyAdapter = field(repr=False)
    components: dict[str, Any] = field(repr=False)
    device: torch.device = torch.device("cpu")
    dtype: torch.dtype = torch.float32
    acceleration: list[str] = field(default_factory=list)  # what the accelerated path applied
    # the checkpoint's own VAE; components["vae"] may hold a chosen VAE file's instead
    base_vae: Any = field(default=None, repr=False)
    vae_file: VaeFile | None = None  # the VAE file in components["vae"], None: its own

    def modules(self) -> dict[str, torch.nn.Module]:
        return {k: v for k, v in self.components.items() if isinstance(v, torch.nn.Module)}

    def to(self, device: torch.device | str) -> LoadedModel:
        device = torch.device(device)
        for module in self.modules().values():
            # moving a module walks all its tensors: only the ones that are elsewhere
            # (the engine calls this before every generation, to undo an OOM offload)
            first = next(module.parameters(), None)
            if first is None or not _same_device(first.device, device):
                module.to(device)
        self.device = device
        return self

    @property
    def nbytes(self) -> int:
        return sum(p.numel() * p.element_size() for m in self.modules().values() for p in m.parameters())


def _same_device(actual: torch.device, wanted: torch.device) -> bool:
    """``cuda:0`` is where ``cuda`` puts things (on the current device)."""
    if actual.type != wanted.type:
        return False
    if wanted.index is None and actual.type == "cuda":
        return actual.index == torch.cuda.current_device()
    return wanted.index is None or actual.index == wanted.index


def pick_device(setting: str) -> torch.device:
    if setting and setting != "auto":
        return torch.device(setting)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(device: torch.device) -> torch.dtype:
    """fp32 on CPU (half precision is ~25x slower there), bf16/fp16 on accelerators."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def memory_budget(device: torch.device) -> int:
    """Bytes the model cache may hold on ``device`` (about half of its memory)."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory * 0.6)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 16 * 1024**3
    return int(total * 0.5)


class ModelManager:
    def __init__(self, settings: Settings, cache_budget_bytes: int | None = None) -> None:
        self.settings = settings
        self.device = pick_device(settings.device)
        self.dtype = pick_dtype(self.device)
        self.acceleration = AccelerationOptions(
            compile=settings.compile,
            channels_last=settings.channels_last,
            fuse_qkv=settings.fuse_qkv,
            cuda_graphs=settings.cuda_graphs,
            fp8=settings.fp8,
            cache_dir=settings.state_dir / "inductor",
        )
        self.memory_mode = validate_mode(settings.memory_mode)  # core.models.memory_modes
        self.cache_budget_bytes = cache_budget_bytes or memory_budget(self.device)
        self.hashes = HashCache(settings.state_dir / "model_hashes.json")
        # what listings read from each checkpoint (pickle files are unpickled once, not per listing)
        self.summaries = SummaryCache(settings.state_dir / "checkpoint_summaries.json")
        self.vaes = VaeLibrary(self)  # VAE files (A1111's SD VAE), core/models/vae_files.py
        self.problems: dict[str, str] = {}  # name -> why it cannot be used
        self._infos: dict[str, ModelInfo] | None = None
        self._loaded: OrderedDict[str, LoadedModel] = OrderedDict()
        self._lock = threading.RLock()
        self.load_count = 0  # fresh loads since start (tests assert nothing loaded)

    # --- listing -----------------------------------------------------------------------

    def checkpoint_dirs(self) -> list[Path]:
        return self.folders(CHECKPOINT_FOLDER)

    def folders(self, kind: str) -> list[Path]:
        """Existing folders of one A1111 kind ("Lora", "ControlNet", "ESRGAN", "VAE",
        "Stable-diffusion", "text_encoders"): the user's models folder first, then the shipped
        one; in each, A1111's name and ComfyUI's (``checkpoints/``, ``diffusion_models/``,
        ``loras/``...: core/models/comfyui.py), so either layout, or both, is read."""
        found: list[Path] = []
        for root in (Path(self.settings.models_dir), SHIPPED_MODELS_DIR):
            for name in comfyui.folder_names(kind):
                folder = root / name
                # one folder once (VAE/ and vae/ are one on a case-insensitive disk)
                if folder.is_dir() and folder.resolve() not in [f.resolve() for f in found]:
                    found.append(folder)
        return found

    def refresh(self) -> list[ModelInfo]:
        """Scan the folders again (new files appear, removed ones go)."""
        infos: dict[str, ModelInfo] = {}
        problems: dict[str, str] = {}
        for root in self.checkpoint_dirs():
            for path, name in self._entries(root):
                if name in infos or name in problems:
                    continue  # the user's models folder wins over the shipped one
                try:
                    infos[name] = self._describe(path, name)
                except ModelError as exc:
                    problems[name] = str(exc)
                    log.warning("model %r skipped: %s", name, exc)
        with self._lock:
            self._infos, self.problems = infos, problems
        return list(infos.values())

    def _entries(self, root: Path) -> list[tuple[Path, str]]:
        """(path, name) of every checkpoint: diffusers folders (not descended into: their
        subfolders are components) and single files, regular files only, each once, links
        followed once (plugin_api.scanning)."""
        found = []
        for item in scan_model_files(
            root,
            CHECKPOINT_SUFFIXES,
            folder_marker="model_index.json",
            skip_folder=lambda name: name.endswith(CONFIG_SIDECAR_SUFFIX),
        ):
            if not item.is_folder and is_beside_vae(item.path):
                continue  # <checkpoint>.vae.safetensors is that checkpoint's VAE (VAE selection)
            name = item.relative if item.is_folder else Path(item.relative).with_suffix("").as_posix()
            found.append((item.path, name))
        return sorted(found, key=lambda e: e[1])

    def _describe(self, path: Path, name: str) -> ModelInfo:
        if path.is_dir():
            refuse_pickle_folder(path, self.settings.allow_pickle)
            try:
                index = json.loads((path / "model_index.json").read_text("utf-8"))
            except (OSError, ValueError) as exc:
                raise ModelError(f"{path}: unreadable model_index.json: {exc}") from exc
            for family in all_families():
                if family.detect_folder(index):
                    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
                    return ModelInfo(
                        name, family.name, "diffusers", size, self.hashes.short_hash(path), path,
                        native_size=native_size(path), recommended=read_recommended(path),
                        sizes=read_sizes(path),
                        variant=folder_variant(path, family),
                        prediction=folder_prediction(path, family),
                        precision=folder_precision(path, family),
                    )  # fmt: skip
            raise ModelError(
                f"{path}: unsupported diffusers pipeline {index.get('_class_name')!r} "
                f"(Easel knows {', '.join(f.label for f in all_families())})"
            )
        summary = self.summaries.get(path, self.settings.allow_pickle)
        family, variant = detect_family(path, summary.shapes)
        sidecar = read_json(
            path.with_name(path.stem + CONFIG_SIDECAR_SUFFIX) / "scheduler" / "scheduler_config.json"
        )
        prediction = detect_prediction(path, family.name, variant, summary.shapes, summary.probes, sidecar)
        if variant == "sd2" and prediction is not None and prediction.type == "epsilon":
            variant = "sd2-512"  # SD 2.x base: 512 pixels by default, not the 768-v model's size
        return ModelInfo(
            name, family.name, summary.format, path.stat().st_size, self.hashes.short_hash(path), path, variant,
            prediction=prediction, precision=weight_precision(path) if summary.format != "pickle" else "",
        )  # fmt: skip

    def list(self) -> list[ModelInfo]:
        with self._lock:
            if self._infos is None:
                self.refresh()
            assert self._infos is not None
            return list(self._infos.values())

    def info(self, name: str) -> ModelInfo:
        """The listing entry for ``name`` (also accepts A1111's "name [hash]" and a hash)."""
        infos = {i.name: i for i in self.list()}
        if name in infos:
            return infos[name]
        bare = name.split(" [", 1)[0].strip()
        for candidate in (bare, Path(bare).with_suffix("").as_posix()):
            if candidate in infos:
                return infos[candidate]
        for info in infos.values():
            if name == info.hash:
                return info
        if bare in self.problems:
            raise ModelError(self.problems[bare])
        known = ", ".join(sorted(infos)) or "none (put models in models/Stable-diffusion)"
        raise ModelError(f"unknown model {name!r}; available: {known}")

    def default_name(self) -> str | None:
        names = [i.name for i in self.list()]
        if DEMO_MODEL_NAME in names:
            return DEMO_MODEL_NAME
        return names[0] if names else None

    # --- loading -----------------------------------------------------------------------

    def is_loaded(self, name: str) -> bool:
        return name in self._loaded

    def get(self, name: str | None = None) -> LoadedModel:
        """The model, loaded now or taken from the cache (``None``: the default model)."""
        return self.acquire(name)[0]

    def acquire(self, name: str | None = None) -> tuple[LoadedModel, bool]:
        """The loaded model and whether this call loaded it (False: from the cache)."""
        with self._lock:
            info = self.info(name or self.default_name() or "")
            cached = self._loaded.get(info.name)
            if cached is not None:
                self._loaded.move_to_end(info.name)
                return cached, False
            model = self._load(info)
            self._loaded[info.name] = model
            self.load_count += 1
            self._evict(keep=info.name)
            return model, True

    def _load(self, info: ModelInfo) -> LoadedModel:
        family = get_family(info.family)
        log.info("loading model %r (%s, %s) on %s", info.name, info.family, info.format, self.device)
        allow_pickle = self.settings.allow_pickle
        try:
            if info.format == "diffusers":
                # checked again now (the files may have changed since the listing), and
                # diffusers is told to read safetensors only
                refuse_pickle_folder(info.path, allow_pickle)
                overrides = {} if allow_pickle else {"use_safetensors": True}
                components = family.load_folder(info.path, self.dtype, **overrides)
            else:
                # a pickle file was already read once with weights_only=True when it was
                # listed; diffusers reads it again with weights_only=True
                config_dir = self.config_dir_for(info, family)
                refuse_pickle_folder(config_dir, allow_pickle)  # a <name>.config/ sidecar too
                if family.name == "zimage" and not zimage_files.is_full_folder(config_dir):
                    components = self._load_zimage_files(info, config_dir)
                elif family.name == "flux2" and not zimage_files.is_full_folder(config_dir):
                    components = self._load_flux2_files(info, config_dir)
                elif family.name in flux_files.FAMILIES and not zimage_files.is_full_folder(config_dir):
                    components = self._load_flux_files(info, config_dir, family)
                elif family.name == "qwen_image" and not zimage_files.is_full_folder(config_dir):
                    folders = {"text_encoders": self.folders("text_encoders"), "VAE": self.folders("VAE")}
                    cache = self.settings.state_dir / "model_configs"
                    components = qwen_image_files.load_split_files(
                        info.path, config_dir, folders, self.dtype, cache
                    )
                elif family.name == "zimage" and (
                    files := zimage_files.original_layout_files(info.path, config_dir)
                ):
                    cache = self.settings.state_dir / "model_configs"
                    components = zimage_files.load_from_files(files, config_dir, self.dtype, cache)
                else:
                    components = family.load_single_file(info.path, config_dir, self.dtype)
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(
                f"{info.path}: cannot load as {family.label}: {type(exc).__name__}: {exc}"
            ) from exc
        for component, module in components.items():
            # a weight the files lacked would only fail after sampling ("Tensor on device meta")
            refuse_meta(module, self._component_source(info, family, component))
        if info.format != "diffusers" and info.prediction is not None and "scheduler" in components:
            components["scheduler"] = with_prediction(components["scheduler"], info.prediction)
        model = LoadedModel(info.name, info.family, info.path, info, family, components, dtype=self.dtype)
        model.base_vae = components.get("vae")
        for module in model.modules().values():
            module.eval().requires_grad_(False)
        if self._fits_on_device(model.nbytes):
            model.to(self.device)
            model.acceleration = accelerate(components, family.denoiser_name, self.device, self.acceleration)
        else:
            # it waits in CPU memory and an offload memory mode streams it to the device
            # (core.models.offload); compiled blocks would only recompile around the swaps
            log.info("model %r stays in CPU memory (memory mode %s)", info.name, self.memory_mode)
            options = dataclasses.replace(self.acceleration, compile="off")
            model.acceleration = accelerate(components, family.denoiser_name, self.device, options)
        model.device = self.device  # where it computes, wherever its weights wait
        return model

    def _component_source(self, info: ModelInfo, family: FamilyAdapter, component: str) -> str:
        """Where a component's weights were read, for errors: a Z-Image or FLUX.2 Klein single
        file takes all but its transformer from the full diffusers folder beside it."""
        if info.format != "diffusers" and family.name in ("zimage", "flux2") and component != "transformer":
            config_dir = self.config_dir_for(info, family)
            if zimage_files.is_full_folder(config_dir):
                return str(config_dir / component)
        return f"{info.path} ({component})"

    def _load_zimage_files(self, info: ModelInfo, config_dir: Path) -> dict[str, Any]:
        """ComfyUI's Z-Image: the transformer file plus a Qwen3 text encoder file and a VAE
        file from text_encoders/ (clip/) and vae/ (or named in <name>.easel.json)."""
        folders = {"text_encoders": self.folders("text_encoders"), "VAE": self.folders("VAE")}
        files = comfyui.zimage_companions(info.path, zimage_files.caption_width(config_dir), folders)
        log.info("Z-Image %r: text encoder %s, VAE %s", info.name, files.text_encoder, files.vae)
        return zimage_files.load_from_files(
            files, config_dir, self.dtype, self.settings.state_dir / "model_configs"
        )

    def _load_flux_files(self, info: ModelInfo, config_dir: Path, family: FamilyAdapter) -> dict[str, Any]:
        """ComfyUI's FLUX.1 / Chroma: the transformer file plus T5 (and CLIP-L) files from
        text_encoders/ (clip/) and a VAE from vae/ (or named in <name>.easel.json)."""
        folders = {"text_encoders": self.folders("text_encoders"), "VAE": self.folders("VAE")}
        pipeline, t5, clip = flux_files.companion_widths(config_dir)
        files = comfyui.flux_companions(info.path, t5, clip, folders, family.label)
        log.info(
            "%s %r: text encoders %s %s, VAE %s", family.label, info.name, files.t5, files.clip, files.vae
        )
        return flux_files.load_from_files(files, config_dir, self.dtype, pipeline)

    def _load_flux2_files(self, info: ModelInfo, config_dir: Path) -> dict[str, Any]:
        """ComfyUI's FLUX.2 Klein: the transformer file plus a Qwen3 text encoder file and a
        FLUX.2 VAE file from text_encoders/ (clip/) and vae/ (or named in <name>.easel.json)."""
        from core.families import flux2

        folders = {"text_encoders": self.folders("text_encoders"), "VAE": self.folders("VAE")}
        text_width, latent_channels = flux2.companion_widths(config_dir)
        files = comfyui.zimage_companions(info.path, text_width, folders, latent_channels, flux2.FAMILY.label)
        log.info("FLUX.2 Klein %r: text encoder %s, VAE %s", info.name, files.text_encoder, files.vae)
        return flux2.load_from_files(files, config_dir, self.dtype, self.settings.state_dir / "model_configs")

    def _fits_on_device(self, nbytes: int) -> bool:
        """Load straight onto the device unless an offload mode is set, or (auto) the
        weights alone would not fit in the free device memory."""
        if self.memory_mode in ("model-offload", "sequential-offload"):
            return False
        if self.memory_mode == "auto" and self.device.type == "cuda":
            free, _total = torch.cuda.mem_get_info(self.device)
            return nbytes + HEADROOM_BYTES < free
        return True

    def select_vae(self, model: LoadedModel, choice: str | None) -> VaeFile | None:
        """Put the VAE for ``choice`` ("Automatic", "None" or a file) into the model's
        components (its own when None is the answer) and return the file used."""
        vae = self.vaes.resolve(choice, model.info)
        if vae is None:
            module = model.base_vae
        else:
            family = get_family(model.family)
            config_dir = (
                model.path if model.info.format == "diffusers" else self.config_dir_for(model.info, family)
            )
            module = self.vaes.load(vae, model, config_dir)
            first = next(model.base_vae.parameters())
            module.to(first.device)  # where the model's own VAE is (the memory mode moves it later)
        if module is not None:
            model.components["vae"] = module
        model.vae_file = vae
        return vae

    def config_dir_for(self, info: ModelInfo, family: FamilyAdapter) -> Path:
        sidecar = info.path.with_name(info.path.stem + CONFIG_SIDECAR_SUFFIX)
        if sidecar.is_dir():
            return sidecar
        return materialize_config_dir(
            MODEL_CONFIGS_DIR / family.config_dir_for(info.variant or family.name),
            self.settings.state_dir / "model_configs",
        )

    def _evict(self, keep: str) -> None:
        total = sum(m.nbytes for m in self._loaded.values())
        while total > self.cache_budget_bytes and len(self._loaded) > 1:
            name, model = next(iter(self._loaded.items()))
            if name == keep:
                self._loaded.move_to_end(name)
                continue
            del self._loaded[name]
            total -= model.nbytes
            log.info("unloaded model %r to stay within the cache budget", name)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def unload(self, name: str | None = None) -> None:
        with self._lock:
            if name is None:
                self._loaded.clear()
            else:
                self._loaded.pop(name, None)


def detect_family(path: Path, shapes: dict[str, list[int]]) -> tuple[FamilyAdapter, str]:
    """The family of a checkpoint from its keys and shapes (never from its file name)."""
    for family in all_families():
        variant = family.detect_keys(shapes)
        if variant:
            return family, variant
    sample = ", ".join(sorted(shapes)[:5]) or "no tensors"
    raise ModelError(
        f"{path}: unknown model architecture ({len(shapes)} tensors, e.g. {sample}); "
        f"Easel recognises {', '.join(f.label for f in all_families())} checkpoints"
    )


def with_prediction(scheduler: Any, prediction: Prediction) -> Any:
    """The scheduler, rebuilt (as diffusers' from_config does) where the detected
    parameterization differs from its config's."""
    overrides = prediction.scheduler_overrides()
    if all(scheduler.config.get(k) == v for k, v in overrides.items()):
        return scheduler
    log.info("scheduler set to %s (%s)", prediction.label, prediction.source)
    return type(scheduler).from_config(scheduler.config, **overrides)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def folder_prediction(folder: Path, family: FamilyAdapter) -> Prediction | None:
    """A diffusers folder's parameterization: its own scheduler config says it."""
    if family.flow:
        return None
    config = read_json(folder / "scheduler" / "scheduler_config.json")
    return from_scheduler_config(config or {}, "scheduler config")


def materialize_config_dir(shipped: Path, cache_root: Path) -> Path:
    """A usable copy of a shipped config folder: the CLIP vocabulary is stored once in
    ``core/model_configs/clip_tokenizer`` and copied into every ``tokenizer*/`` folder
    that lacks it (diffusers wants each tokenizer folder complete)."""
    if not shipped.is_dir():
        raise ModelError(f"no shipped model config folder {shipped}")
    needs_vocab = [
        d
        for d in shipped.iterdir()
        if d.is_dir()
        and d.name.startswith("tokenizer")
        and (d / "tokenizer_config.json").exists()
        and not (d / "vocab.json").exists()
        and not (d / "tokenizer.json").exists()
    ]
    if not needs_vocab:
        return shipped
    # the folder name carries a digest of the shipped files, so an upgrade never
    # reuses a stale copy
    target = cache_root / f"{shipped.name}-{folder_digest(shipped)[:12]}"
    if not (target / ".complete").exists():
        tmp = cache_root / f".{shipped.name}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(shipped, tmp)
        for folder in needs_vocab:
            if is_t5_tokenizer(folder):
                shutil.copy(T5_TOKENIZER_FILE, tmp / folder.name / "tokenizer.json")
                continue
            for file in ("vocab.json", "merges.txt"):
                shutil.copy(CLIP_TOKENIZER_DIR / file, tmp / folder.name / file)
        (tmp / ".complete").write_text("ok")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    return target


def folder_variant(folder: Path, family: FamilyAdapter) -> str:
    """A diffusers folder's variant: "inpaint" for a 9-channel UNet, the family's own
    reading of its configs where it has one (FLUX.1 dev or schnell), else ""."""
    if unet_in_channels(folder) == INPAINT_IN_CHANNELS:
        return "inpaint"
    reader = getattr(family, "folder_variant", None)
    return reader(folder) if reader is not None else ""


def is_t5_tokenizer(folder: Path) -> bool:
    config = read_json(folder / "tokenizer_config.json") or {}
    return str(config.get("tokenizer_class", "")).startswith("T5")


def folder_precision(folder: Path, family: FamilyAdapter) -> str:
    """The precision of a diffusers folder's denoiser weights."""
    weights = sorted((folder / family.denoiser_name).glob("*.safetensors"))
    return weight_precision(weights[0]) if weights else ""


def unet_in_channels(folder: Path) -> int | None:
    """A diffusers folder's UNet input width (9: an inpainting model)."""
    config = read_json(folder / "unet" / "config.json") or {}
    value = config.get("in_channels")
    return value if isinstance(value, int) else None


def native_size(folder: Path) -> int | None:
    """The image size a diffusers folder's UNet was trained for (its latent ``sample_size``
    times the VAE's downsampling), so a small model like the demo one defaults to its own
    size rather than its family's 512 or 1024. None when the configs don't say."""
    try:
        unet = json.loads((folder / "unet" / "config.json").read_text("utf-8"))
        vae = json.loads((folder / "vae" / "config.json").read_text("utf-8"))
        sample_size = unet["sample_size"]
        factor = 2 ** (len(vae["block_out_channels"]) - 1)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return sample_size * factor if isinstance(sample_size, int) and sample_size > 0 else None
