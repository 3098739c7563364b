"""ControlNet units from a request: both request shapes, validated, with clear errors.

Two shapes are accepted in ``request.extension_args["controlnet"]``:

- sd-webui-controlnet's, as ``alwayson_scripts.controlnet`` sends it:
  ``{"args": [{"input_image": <base64>, "module": "canny", "model": "name [hash]",
  "weight": 1.0, "guidance_start": 0.0, "guidance_end": 1.0,
  "resize_mode": "Crop and Resize", "processor_res": 512, "threshold_a": 100,
  "threshold_b": 200, "enabled": true, "control_mode": "Balanced", ...}]}``
  (``image`` is accepted for ``input_image``, and ``{"image": b64, "mask": b64}`` for the
  image itself; resize modes also as 0/1/2);
- Easel's native field: ``{"units": [{"image": <PIL image or base64>, "preprocessor":
  "canny", "model": "easel-demo-canny", "weight": 1.0, "start": 0.0, "end": 1.0,
  "resize_mode": "crop"}]}`` (the A1111 key names work here too).

``union_control_type`` (sd-webui-controlnet's field for Union ControlNets; a name such as
"canny" or "depth", or the model's mode index) chooses a FLUX.1 Union ControlNet's mode.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageOps

from plugin_api.errors import InvalidRequest
from plugin_api.images import check_pil_image, open_image

MAX_WEIGHT = 2.0
RESIZE_MODES = {
    "just resize": "just_resize",
    "just_resize": "just_resize",
    "resize": "just_resize",
    "0": "just_resize",
    "crop and resize": "crop",
    "inner fit (scale to fit)": "crop",
    "scale to fit (inner fit)": "crop",
    "crop": "crop",
    "1": "crop",
    "resize and fill": "fill",
    "envelope (outer fit)": "fill",
    "fill": "fill",
    "2": "fill",
}
RESIZE_LABELS = {"just_resize": "Just Resize", "crop": "Crop and Resize", "fill": "Resize and Fill"}
NO_MODEL = {"", "none"}
# keys that mean the same thing in the two shapes: (ours, A1111's)
IMAGE_KEYS = ("image", "input_image")
MODULE_KEYS = ("preprocessor", "module")
START_KEYS = ("start", "guidance_start")
END_KEYS = ("end", "guidance_end")
# sd-webui-controlnet's ControlMode, in its enum order (the integer forms index it)
BALANCED, PROMPT_MODE, CONTROL_MODE = (
    "Balanced",
    "My prompt is more important",
    "ControlNet is more important",
)
CONTROL_MODES = (BALANCED, PROMPT_MODE, CONTROL_MODE)
# sd-webui-controlnet's words when a unit has no image and there is no img2img init image
NO_INPUT_IMAGE = "controlnet is enabled but no input image is given"


@dataclass
class ControlUnit:
    index: int
    field: str  # e.g. "alwayson_scripts.controlnet.args.0": names the unit in errors
    image: Image.Image | None
    preprocessor: str
    model: str
    weight: float = 1.0
    start: float = 0.0
    end: float = 1.0
    resize_mode: str = "crop"
    processor_res: int = 512
    threshold_a: float | None = None
    threshold_b: float | None = None
    control_mode: str = BALANCED
    pixel_perfect: bool = False
    # no image in the request: the img2img init image is used (sd-webui-controlnet's rule)
    from_init_image: bool = False
    # a Union ControlNet's control type (name or index); None: guessed from the preprocessor
    union_control_type: str | None = None

    @property
    def active(self) -> bool:
        """Units with weight 0 are skipped entirely: the result equals no ControlNet."""
        return self.weight != 0.0

    def applies_at(self, fraction: float) -> bool:
        return self.start <= fraction <= self.end

    def infotext(self) -> str:
        return (
            f"Module: {self.preprocessor}, Model: {self.model}, Weight: {self.weight:g}, "
            f"Resize Mode: {RESIZE_LABELS[self.resize_mode]}, Guidance Start: {self.start:g}, "
            f"Guidance End: {self.end:g}, Pixel Perfect: {self.pixel_perfect}, "
            f"Control Mode: {self.control_mode}"
        )


def decode_image(value: Any, field: str) -> Image.Image:
    """A PIL image, a base64 string (data URL allowed) or A1111's {"image": ...} -> RGB."""
    if isinstance(value, dict):
        value = value.get("image")
        field += ".image"
    if isinstance(value, Image.Image):
        image = check_pil_image(value, field)
    elif isinstance(value, str):
        data = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value
        try:
            # lenient like sd-webui-controlnet (clients send line-wrapped base64)
            raw = base64.b64decode(data, validate=False)
        except (binascii.Error, ValueError) as exc:
            raise InvalidRequest(field, f"not valid base64: {exc}") from exc
        # the host's one image gate: size read from the header before any pixel is decoded
        image = open_image(raw, field)
    else:
        raise InvalidRequest(field, f"expected a base64 image, got {type(value).__name__}")
    return ImageOps.exif_transpose(image).convert("RGB")


def _pick(raw: dict[str, Any], keys: tuple[str, ...], default: Any) -> tuple[Any, str]:
    for key in keys:
        if key in raw and raw[key] is not None:
            return raw[key], key
    return default, keys[-1]


def _number(value: Any, field: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidRequest(field, f"expected a number from {low:g} to {high:g}, got {value!r}")
    try:
        number = float(value)
    except ValueError as exc:
        raise InvalidRequest(field, f"expected a number, got {value!r}") from exc
    if not low <= number <= high:
        raise InvalidRequest(field, f"must be from {low:g} to {high:g}, got {number:g}")
    return number


def _threshold(value: Any, field: str) -> float | None:
    if value is None:
        return None
    number = _number(value, field, -1.0, 10000.0)
    return None if number < 0 else number  # A1111 sends -1 for "the default"


def parse_control_mode(raw: dict[str, Any], field: str) -> str:
    """``control_mode`` as sd-webui-controlnet reads it: a name or its index (0/1/2); the
    older boolean ``guessmode`` (before control_mode existed) when control_mode is absent:
    guess mode became "ControlNet is more important"."""
    value = raw.get("control_mode")
    if value is None:
        guess = raw.get("guessmode", raw.get("guess_mode"))
        if guess is None:
            return BALANCED
        if not isinstance(guess, bool):
            raise InvalidRequest(f"{field}.guessmode", f"expected true or false, got {guess!r}")
        return CONTROL_MODE if guess else BALANCED
    if isinstance(value, bool):
        raise InvalidRequest(f"{field}.control_mode", f"expected a name or 0/1/2, got {value!r}")
    text = str(value).strip()
    if text.lstrip("-").isdigit() or isinstance(value, float):
        try:
            index = int(float(text))
        except ValueError:
            index = -1
        if 0 <= index < len(CONTROL_MODES):
            return CONTROL_MODES[index]
    for mode in CONTROL_MODES:
        if text.lower() == mode.lower():
            return mode
    raise InvalidRequest(
        f"{field}.control_mode",
        f"unknown control mode {value!r}; use {', '.join(repr(m) for m in CONTROL_MODES)} (or 0/1/2)",
    )


def _flag(raw: dict[str, Any], key: str, field: str) -> bool:
    value = raw.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidRequest(f"{field}.{key}", f"expected true or false, got {value!r}")
    return value


def parse_units(args: Any, decode: bool = True) -> list[ControlUnit]:
    """The enabled units with a model (weight 0 included: callers skip inactive ones).
    Raises InvalidRequest naming the field for anything malformed."""
    if args is None:
        return []
    if isinstance(args, list):
        args = {"args": args}
    if not isinstance(args, dict):
        raise InvalidRequest(
            "extension_args.controlnet", 'expected {"args": [unit, ...]} or {"units": [...]}'
        )
    if "units" in args:
        base, raw_units = "extension_args.controlnet.units", args["units"]
    else:
        base, raw_units = "alwayson_scripts.controlnet.args", args.get("args", [])
    if not isinstance(raw_units, list):
        raise InvalidRequest(base, "expected a list of units")
    units = []
    for index, raw in enumerate(raw_units):
        field = f"{base}.{index}"
        if raw is None:
            continue
        if not isinstance(raw, dict):
            raise InvalidRequest(field, "expected an object with input_image, module, model, weight...")
        if raw.get("enabled", True) is False:
            continue
        model = raw.get("model")
        model = "" if model is None else str(model).strip()
        if model.lower() in NO_MODEL:
            continue  # A1111: a unit without a model does nothing
        units.append(_parse_unit(raw, index, field, model, decode))
    return units


def _parse_unit(raw: dict[str, Any], index: int, field: str, model: str, decode: bool) -> ControlUnit:
    weight = _number(raw.get("weight", 1.0), f"{field}.weight", 0.0, MAX_WEIGHT)
    start_value, start_key = _pick(raw, START_KEYS, 0.0)
    end_value, end_key = _pick(raw, END_KEYS, 1.0)
    start = _number(start_value, f"{field}.{start_key}", 0.0, 1.0)
    end = _number(end_value, f"{field}.{end_key}", 0.0, 1.0)
    if start > end:
        raise InvalidRequest(f"{field}.{start_key}", f"start ({start:g}) is after end ({end:g})")
    mode_value = raw.get("resize_mode", "Crop and Resize")
    resize_mode = RESIZE_MODES.get(str(mode_value).strip().lower())
    if resize_mode is None:
        raise InvalidRequest(
            f"{field}.resize_mode",
            f"unknown resize mode {mode_value!r}; use Just Resize, Crop and Resize or Resize and Fill (or 0/1/2)",
        )
    module, _ = _pick(raw, MODULE_KEYS, "none")
    if not isinstance(module, str):
        raise InvalidRequest(f"{field}.module", "expected a preprocessor name")
    image_value, image_key = _pick(raw, IMAGE_KEYS, None)
    if isinstance(image_value, dict) and not image_value.get("image"):
        image_value = None  # {"image": null, "mask": ...}: no image either
    # no image: the img2img init image stands in (resolve_image); txt2img refuses it there
    from_init = image_value is None or image_value == ""
    image = decode_image(image_value, f"{field}.{image_key}") if decode and not from_init else None
    res = raw.get("processor_res", 512)
    resolution = 512 if res is None or (isinstance(res, int | float) and res < 0) else res
    return ControlUnit(
        index=index,
        field=field,
        image=image,
        preprocessor=module.strip() or "none",
        model=model,
        weight=weight,
        start=start,
        end=end,
        resize_mode=resize_mode,
        processor_res=int(_number(resolution, f"{field}.processor_res", 64, 4096)),
        threshold_a=_threshold(raw.get("threshold_a"), f"{field}.threshold_a"),
        threshold_b=_threshold(raw.get("threshold_b"), f"{field}.threshold_b"),
        control_mode=parse_control_mode(raw, field),
        pixel_perfect=_flag(raw, "pixel_perfect", field),
        from_init_image=from_init,
        union_control_type=_union_type(raw.get("union_control_type"), f"{field}.union_control_type"),
    )


def _union_type(value: Any, field: str) -> str | None:
    """sd-webui-controlnet sends "Unknown" when none is chosen: the same as none."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "unknown")):
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidRequest(field, f"expected a control type name or index, got {value!r}")
    return str(value).strip()


def resolve_image(unit: ControlUnit, init_image: Image.Image | None) -> None:
    """A unit without an image takes the img2img init image, as sd-webui-controlnet does;
    without one (txt2img) it is refused with sd-webui-controlnet's message. The init
    image is fitted "Just Resize": that is how Easel's img2img fits the init image itself
    (A1111's img2img resize mode 0, which sd-webui-controlnet then applies to the unit)."""
    if not unit.from_init_image:
        return
    if init_image is None:
        raise InvalidRequest(
            f"{unit.field}.{IMAGE_KEYS[1]}",
            f"{NO_INPUT_IMAGE} (a unit without an image uses the img2img init image; in txt2img give it one)",
        )
    unit.image = ImageOps.exif_transpose(init_image).convert("RGB")
    unit.resize_mode = "just_resize"


def pixel_perfect_resolution(image: Image.Image, width: int, height: int, mode: str) -> int:
    """sd-webui-controlnet's "pixel perfect" preprocessor resolution: the raw image's short
    side scaled by the factor the resize mode will apply, so the preprocessor works at the
    size its map ends up at (Resize and Fill scales by the smaller factor, the others by
    the larger)."""
    k_h, k_w = height / image.height, width / image.width
    factor = min(k_h, k_w) if mode == "fill" else max(k_h, k_w)
    return max(1, round(factor * min(image.height, image.width)))


def fit_image(image: Image.Image, width: int, height: int, mode: str) -> Image.Image:
    """The control image at the generation size: stretched, cropped or padded (black)."""
    image = image.convert("RGB")
    if mode == "just_resize" or image.size == (width, height):
        return image.resize((width, height), Image.Resampling.LANCZOS)
    if mode == "crop":
        return ImageOps.fit(image, (width, height), Image.Resampling.LANCZOS)
    scale = min(width / image.width, height / image.height)
    inner = image.resize(
        (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.LANCZOS
    )
    canvas = Image.new("RGB", (width, height), (0, 0, 0))
    canvas.paste(inner, ((width - inner.width) // 2, (height - inner.height) // 2))
    return canvas
