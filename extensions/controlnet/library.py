"""ControlNet models on disk: listing (name, family, format) and loading.

Two formats in ``models/ControlNet``:

- a diffusers folder (``config.json`` + ``diffusion_pytorch_model.safetensors``);
- a single ``.safetensors`` file, in the original (``control_model.*``/``input_blocks``,
  ``zero_convs``, ``input_hint_block``) or in diffusers' key layout. A single file has no
  config: its shapes are those of the model it is used with (its UNet's config, as
  ``ControlNetModel.from_unet`` builds it) with the conditioning-embedding widths read
  from the file; loading is strict, so a file that does not fit fails with a clear error.

FLUX.1 ControlNets (diffusers' ``FluxControlNetModel``, a folder or a single file in
diffusers' key layout) are listed as family "flux" and loaded by ``flux.load``; XLabs' own
single files are listed as Flux with a problem (see ``flux``).

Pickle files (``.pth``/``.ckpt``/``.pt``/``.bin``) are listed as refused: unpickling can
run code. Nothing here downloads anything.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from extensions.controlnet import flux
from plugin_api.files import SafetensorsHeaderError, read_safetensors_header

CONTROLNET_FOLDER = "ControlNet"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors")
LDM_PREFIX = "control_model."
# ControlNet config keys that must equal the UNet's for the residuals to fit
SHAPE_KEYS = (
    "block_out_channels",
    "cross_attention_dim",
    "layers_per_block",
    "in_channels",
    "down_block_types",
)


class ControlNetFileError(Exception):
    """A ControlNet file or folder that cannot be used; the message names it."""


@dataclass
class ControlNetInfo:
    name: str  # folder or file name without suffix, as requested in a unit's "model"
    path: Path
    family: str  # sd15 | sdxl | flux | zimage | unknown (or another family diffusers knows)
    format: str  # "diffusers" | "single-file"
    size: int
    problem: str = ""  # why it cannot be used
    num_mode: int | None = None  # a FLUX.1 Union ControlNet's number of control modes

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "family": self.family,
            "format": self.format,
            "size": self.size,
            "problem": self.problem,
            "num_mode": self.num_mode,
        }


def read_safetensors_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor name -> shape from a safetensors header (no weights read)."""
    try:
        return read_safetensors_header(path).shapes()
    except SafetensorsHeaderError as exc:  # names the file already
        raise ControlNetFileError(str(exc)) from exc


def family_from_config(config: dict[str, Any]) -> str:
    cls = config.get("_class_name", "")
    if cls == "ControlNetModel":
        if config.get("addition_embed_type") == "text_time":
            return "sdxl"
        return "sd15"  # SD1.x and SD2.x share Easel's sd15 family
    if cls == "ZImageControlNetModel":
        return "zimage"
    return cls.replace("ControlNetModel", "").lower() or "unknown"


def family_from_keys(shapes: dict[str, list[int]]) -> str:
    if flux.layout(shapes) is not None:  # before SD: XLabs' files have an input_hint_block too
        return flux.FLUX
    keys = [k.removeprefix(LDM_PREFIX) for k in shapes]
    if any(k.startswith(("control_layers.", "control_all_x_embedder.")) for k in keys):
        return "zimage"
    if any(k.startswith(("add_embedding.", "label_emb.")) for k in keys):
        return "sdxl"
    if any(k.startswith(("input_hint_block.", "controlnet_cond_embedding.")) for k in keys):
        return "sd15"
    return "unknown"


def is_original_layout(keys: Any) -> bool:
    return any(k.removeprefix(LDM_PREFIX).startswith("input_hint_block.") for k in keys)


def conditioning_channels(shapes: dict[str, list[int]]) -> tuple[int, ...]:
    """The conditioning embedding's widths from a file's shapes (either key layout)."""
    original = is_original_layout(shapes)
    stripped = {k.removeprefix(LDM_PREFIX): v for k, v in shapes.items()}
    if original:
        conv_in = stripped["input_hint_block.0.weight"][0]
        # blocks are at input_hint_block.2, 4, ..., 12; every second one widens (stride 2)
        later = [stripped[f"input_hint_block.{i}.weight"][0] for i in range(4, 14, 4)]
    else:
        conv_in = stripped["controlnet_cond_embedding.conv_in.weight"][0]
        count = len({k.split(".")[2] for k in stripped if k.startswith("controlnet_cond_embedding.blocks.")})
        later = [stripped[f"controlnet_cond_embedding.blocks.{i}.weight"][0] for i in range(1, count, 2)]
    return (conv_in, *later)


class ControlNetLibrary:
    """Lists the ControlNet folders and files and keeps a few loaded models warm."""

    def __init__(self, folders: list[Path], keep_loaded: int = 3) -> None:
        self.folders = folders
        self.keep_loaded = keep_loaded
        self._loaded: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()

    # --- listing ---------------------------------------------------------------------

    def scan(self) -> list[ControlNetInfo]:
        found: dict[str, ControlNetInfo] = {}
        for folder in self.folders:
            if not folder.is_dir():
                continue
            for entry in sorted(folder.iterdir()):
                info = self._describe(entry)
                if info is not None and info.name.lower() not in found:
                    found[info.name.lower()] = info
        return sorted(found.values(), key=lambda i: i.name.lower())

    def _describe(self, entry: Path) -> ControlNetInfo | None:
        if entry.is_dir() and (entry / "config.json").is_file():
            weights = next((entry / n for n in WEIGHT_NAMES if (entry / n).is_file()), None)
            size = weights.stat().st_size if weights else 0
            info = ControlNetInfo(entry.name, entry, "unknown", "diffusers", size)
            try:
                config = json.loads((entry / "config.json").read_text("utf-8"))
                info.family = family_from_config(config)
                if info.family == flux.FLUX and isinstance(config.get("num_mode"), int):
                    info.num_mode = config["num_mode"]
            except (OSError, ValueError, AttributeError) as exc:
                info.problem = f"{entry / 'config.json'}: cannot read: {exc}"
            if weights is None:
                info.problem = f"{entry}: no {WEIGHT_NAMES[0]} (only safetensors weights are read)"
            return info
        if entry.is_file() and entry.suffix.lower() == ".safetensors":
            info = ControlNetInfo(entry.stem, entry, "unknown", "single-file", entry.stat().st_size)
            try:
                shapes = read_safetensors_shapes(entry)
            except ControlNetFileError as exc:
                info.problem = str(exc)
                return info
            info.family = family_from_keys(shapes)
            if flux.layout(shapes) == "xlabs":
                info.problem = flux.xlabs_problem(entry)
            elif info.family == flux.FLUX:
                info.num_mode = flux.num_mode(shapes)
            return info
        if entry.is_file() and entry.suffix.lower() in PICKLE_SUFFIXES:
            return ControlNetInfo(
                entry.stem,
                entry,
                "unknown",
                "pickle",
                entry.stat().st_size,
                problem=f"{entry}: pickle files can run code when loaded, so they are refused; "
                "convert it to .safetensors",
            )
        return None

    def find(self, name: str) -> ControlNetInfo | None:
        """The model called ``name`` (case-insensitive; A1111's "name [hash]" allowed)."""
        wanted = strip_hash(name).lower()
        for info in self.scan():
            if info.name.lower() == wanted:
                return info
        return None

    # --- loading ---------------------------------------------------------------------

    def load(self, info: ControlNetInfo, unet: Any, device: Any, dtype: Any) -> Any:
        """The ControlNet as a torch module on ``device``/``dtype``, shaped for ``unet``
        (a ``UNet2DConditionModel``, or FLUX.1's transformer for a Flux ControlNet).
        Raises ControlNetFileError naming the file."""
        stamp = info.path.stat().st_mtime if info.path.exists() else 0
        key = (str(info.path), stamp, str(device), str(dtype), unet_signature(unet))
        with self._lock:
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
            model = self._load_uncached(info, unet).to(device=device, dtype=dtype).eval()
            model.requires_grad_(False)
            self._loaded[key] = model
            while len(self._loaded) > self.keep_loaded:
                self._loaded.popitem(last=False)
            return model

    def _load_uncached(self, info: ControlNetInfo, unet: Any) -> Any:
        from diffusers import ControlNetModel

        if info.family == flux.FLUX:
            try:
                return flux.load(info, unet)
            except flux.FluxControlNetError as exc:
                raise ControlNetFileError(str(exc)) from exc
        if info.format == "diffusers":
            try:
                model = ControlNetModel.from_pretrained(str(info.path), local_files_only=True)
            except Exception as exc:
                raise ControlNetFileError(f"{info.path}: cannot load: {type(exc).__name__}: {exc}") from exc
            check_fits(info, dict(model.config), dict(unet.config))
            return model
        return load_single_file(info, unet)


def strip_hash(name: str) -> str:
    """A1111 lists models as "name [hash]"; accept that form too."""
    name = name.strip()
    if name.endswith("]") and " [" in name:
        name = name[: name.rindex(" [")]
    return name


def unet_signature(unet: Any) -> tuple:
    config = unet.config
    keys = (*SHAPE_KEYS, *flux.FIT_KEYS, "axes_dims_rope", "num_attention_heads", "attention_head_dim")
    return (type(unet).__name__, *(str(config.get(k)) for k in keys))


def check_fits(info: ControlNetInfo, config: dict[str, Any], unet_config: dict[str, Any]) -> None:
    """Raise when the ControlNet's residuals cannot fit the UNet (names what differs)."""
    different = []
    for key in SHAPE_KEYS:
        mine, theirs = config.get(key), unet_config.get(key)
        if mine is not None and theirs is not None and list_of(mine) != list_of(theirs):
            different.append(f"{key} {list_of(mine)} vs the model's {list_of(theirs)}")
    if different:
        raise ControlNetFileError(f"{info.path} does not fit the loaded model: " + "; ".join(different))


def list_of(value: Any) -> Any:
    return list(value) if isinstance(value, list | tuple) else value


def load_single_file(info: ControlNetInfo, unet: Any) -> Any:
    from diffusers import ControlNetModel
    from safetensors.torch import load_file

    try:
        state = load_file(str(info.path))
    except Exception as exc:
        raise ControlNetFileError(f"{info.path}: cannot read: {type(exc).__name__}: {exc}") from exc
    shapes = {k: list(v.shape) for k, v in state.items()}
    try:
        channels = conditioning_channels(shapes)
    except (KeyError, IndexError) as exc:
        raise ControlNetFileError(
            f"{info.path}: not a ControlNet (no conditioning embedding weights: {exc})"
        ) from exc
    model = ControlNetModel.from_unet(
        unet, conditioning_embedding_out_channels=channels, load_weights_from_unet=False
    )
    if is_original_layout(state):
        from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

        state = {k.removeprefix(LDM_PREFIX): v for k, v in state.items()}
        try:
            state = convert_controlnet_checkpoint(state, dict(model.config))
        except Exception as exc:
            raise ControlNetFileError(f"{info.path}: cannot convert its keys: {exc}") from exc
    state = {k: v for k, v in state.items() if v is not None}
    missing, unexpected = [], []
    try:
        result = model.load_state_dict(state, strict=False)
        missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    except RuntimeError as exc:  # shape mismatches
        first = str(exc).split("\n")[1:2]
        raise ControlNetFileError(
            f"{info.path} does not fit the loaded model: {' '.join(first).strip()}"
        ) from exc
    if missing or unexpected:
        raise ControlNetFileError(
            f"{info.path} does not fit the loaded model: {len(missing)} missing weights "
            f"(e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]})"
        )
    return model
