"""The X/Y/Z plot's axis types and A1111's value syntax.

Axis types are listed in A1111's order (1.10: ``scripts/xyz_grid.py``), txt2img and
img2img each with their own list, because API clients send a type as its index in that
list (txt2img: 1 is "Seed", 6 "CFG Scale", 7 "Prompt S/R", 9 "Sampler"). Types Easel has
no equivalent for keep their place and are refused by name. Easel's own axes (LoRA
weight, any plain request field) come after A1111's, so no index moves.

Values, as A1111 reads them: a comma-separated list (CSV, so ``"a, b", c`` keeps the
comma inside quotes), where a number axis also takes ranges: ``1-5`` (1, 2, 3, 4, 5),
``1-5 (+2)`` (1, 3, 5), ``1-10 [5]`` (five values spread from 1 to 10;
whole numbers are truncated), and for decimals ``0.5-2 (+0.5)``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from plugin_api.errors import InvalidRequest
from plugin_api.types import GenerationRequest

TXT2IMG, IMG2IMG = "txt2img", "img2img"
# the longest axis and the most cells one plot may have: a typo like "1-100000" should be
# refused, not queued for a week
MAX_VALUES = 512

Apply = Callable[[GenerationRequest, Any, list[Any]], None]


@dataclass(frozen=True)
class Axis:
    """One axis type: how its values are read, applied to a request and labelled."""

    label: str
    kind: str  # "int" | "float" | "str" | "permutations" | "nothing"
    apply: Apply | None  # None: an A1111 type Easel cannot apply
    modes: tuple[str, ...] = (TXT2IMG, IMG2IMG)
    # "label": "CFG Scale: 7.0"; "value": the value alone (samplers, prompts); "basename"
    label_style: str = "label"
    choices: str | None = None  # a list to pick from (A1111: a dropdown, unless csv_mode)
    cost: float = 0.0  # A1111's: costly axes (model loads) go in the outer loop
    why_not: str = ""

    @property
    def supported(self) -> bool:
        return self.apply is not None

    def format(self, value: Any) -> str:
        if self.kind == "nothing":
            return ""
        if self.kind == "permutations":
            return ", ".join(value)
        if isinstance(value, float):
            value = round(value, 8)
        if self.label_style == "basename":
            return str(value).replace("\\", "/").rsplit("/", 1)[-1]
        return str(value) if self.label_style == "value" else f"{self.label}: {value}"


def set_field(name: str) -> Apply:
    def apply(request: GenerationRequest, value: Any, values: list[Any]) -> None:
        setattr(request, name, value)

    return apply


def apply_prompt_sr(request: GenerationRequest, value: str, values: list[str]) -> None:
    """A1111's Prompt S/R: the first value is searched, every value replaces it (the
    first cell keeps the prompt as written), in the prompt and the negative prompt."""
    search = values[0]
    request.prompt = request.prompt.replace(search, value)
    request.negative_prompt = request.negative_prompt.replace(search, value)


def apply_prompt_order(request: GenerationRequest, value: tuple[str, ...], values: list[Any]) -> None:
    """A1111's Prompt order: the tokens appear in the order of this permutation, at the
    places where the tokens stood."""
    prompt = request.prompt
    found = sorted((prompt.find(token), token) for token in value)
    pieces = []
    for _, token in found:
        at = prompt.find(token)
        pieces.append(prompt[:at])
        prompt = prompt[at + len(token) :]
    request.prompt = "".join(piece + token for piece, token in zip(pieces, value, strict=False)) + prompt


def apply_vae(request: GenerationRequest, value: str, values: list[str]) -> None:
    folded = value.strip().casefold()
    request.vae = {"auto": "Automatic", "automatic": "Automatic", "none": "None"}.get(folded, value.strip())


def apply_styles(request: GenerationRequest, value: str, values: list[str]) -> None:
    request.styles = [*request.styles, *value.split(",")]


def apply_size(request: GenerationRequest, value: str, values: list[str]) -> None:
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", value)
    if match is None:
        raise ValueError(f"size {value!r} is not WIDTHxHEIGHT")
    request.width, request.height = int(match.group(1)), int(match.group(2))


LORA_TAG = re.compile(r"<lora:([^:>]+):([^:>]+)((?::[^>]*)?)>", re.IGNORECASE)


def apply_lora_weight(request: GenerationRequest, value: float, values: list[float]) -> None:
    """Easel's LoRA weight axis: the weight of every ``<lora:name:weight>`` tag of the
    prompt becomes this value (A1111 users do this with Prompt S/R on the tag)."""
    request.prompt = LORA_TAG.sub(
        lambda m: f"<lora:{m.group(1)}:{format_number(value)}{m.group(3)}>", request.prompt
    )


def format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(round(value, 8))


def nothing(request: GenerationRequest, value: Any, values: list[Any]) -> None:
    return None


def unsupported(label: str, why: str = "Easel has no such setting", **kw: Any) -> Axis:
    return Axis(label, kw.pop("kind", "float"), None, why_not=why, **kw)


T2I, I2I = (TXT2IMG,), (IMG2IMG,)
# A1111 1.10's list, in its order (both modes; ``modes`` says where each appears)
A1111_AXES: tuple[Axis, ...] = (
    Axis("Nothing", "nothing", nothing),
    Axis("Seed", "int", set_field("seed")),
    unsupported("Var. seed", "Easel has no variation seeds", kind="int"),
    unsupported("Var. strength", "Easel has no variation seeds"),
    Axis("Steps", "int", set_field("steps")),
    Axis("Hires steps", "int", set_field("hr_second_pass_steps"), modes=T2I),
    Axis("CFG Scale", "float", set_field("cfg_scale")),
    unsupported("Image CFG Scale", "Easel has no instruct-pix2pix models", modes=I2I),
    Axis("Prompt S/R", "str", apply_prompt_sr, label_style="value"),
    Axis("Prompt order", "permutations", apply_prompt_order),
    Axis("Sampler", "str", set_field("sampler"), modes=T2I, label_style="value", choices="samplers"),
    unsupported("Hires sampler", "Easel's hires pass uses the request's sampler", kind="str", modes=T2I),
    Axis("Sampler", "str", set_field("sampler"), modes=I2I, label_style="value", choices="samplers"),
    Axis("Checkpoint name", "str", set_field("model"), label_style="basename", choices="models", cost=1.0),
    unsupported("Negative Guidance minimum sigma"),
    unsupported("Sigma Churn"),
    unsupported("Sigma min"),
    unsupported("Sigma max"),
    unsupported("Sigma noise"),
    Axis("Schedule type", "str", set_field("scheduler"), choices="schedule_types"),
    unsupported("Schedule min sigma"),
    unsupported("Schedule max sigma"),
    unsupported("Schedule rho"),
    unsupported("Beta schedule alpha"),
    unsupported("Beta schedule beta"),
    unsupported("Eta"),
    Axis("Clip skip", "int", set_field("clip_skip")),
    Axis("Denoising", "float", set_field("denoising_strength")),
    unsupported("Initial noise multiplier"),
    unsupported("Extra noise"),
    Axis("Hires upscaler", "str", set_field("hr_upscaler"), modes=T2I, choices="upscalers"),
    unsupported("Cond. Image Mask Weight", modes=I2I),
    Axis("VAE", "str", apply_vae, choices="vaes", cost=0.7),
    Axis("Styles", "str", apply_styles),
    unsupported("UniPC Order", kind="int"),
    unsupported("Face restore", "Easel has no face restoration", kind="str"),
    unsupported("Token merging ratio"),
    unsupported("Token merging ratio high-res"),
    unsupported("Always discard next-to-last sigma", kind="str"),
    unsupported("SGM noise multiplier", kind="str"),
    unsupported("Refiner checkpoint", "Easel has no refiner pass", kind="str"),
    unsupported("Refiner switch at", "Easel has no refiner pass"),
    unsupported("RNG source", "Easel draws noise on the CPU, always", kind="str"),
    unsupported("FP8 mode", kind="str"),
    Axis("Size", "str", apply_size, label_style="value"),
)

# plain request fields any axis may vary ("Request: late_cfg_scale"); the rest (images,
# the prompt itself, nested objects) have axes of their own or none
_REQUEST_FIELD_KINDS = {"int": "int", "float": "float", "str": "str", "bool": "str"}
_COVERED = {
    "seed", "steps", "cfg_scale", "sampler", "scheduler", "model", "vae", "clip_skip",
    "denoising_strength", "hr_second_pass_steps", "hr_upscaler", "width", "height",
    "prompt", "negative_prompt", "styles", "output_format", "save_images", "script_name",
    "batch_size", "batch_count",
}  # fmt: skip


def _field_kind(field: dataclasses.Field) -> str | None:
    text = str(field.type).replace(" ", "")
    first = text.split("|", 1)[0]
    return _REQUEST_FIELD_KINDS.get(first)


def _parse_bool(name: str) -> Apply:
    def apply(request: GenerationRequest, value: Any, values: list[Any]) -> None:
        text = str(value).strip().casefold()
        if text not in {"true", "false", "1", "0", "yes", "no"}:
            raise ValueError(f"{value!r} is not true or false")
        setattr(request, name, text in {"true", "1", "yes"})

    return apply


def _easel_axes() -> tuple[Axis, ...]:
    axes = [Axis("LoRA weight", "float", apply_lora_weight)]
    for field in dataclasses.fields(GenerationRequest):
        kind = _field_kind(field)
        if kind is None or field.name in _COVERED:
            continue
        apply = _parse_bool(field.name) if str(field.type) == "bool" else set_field(field.name)
        axes.append(Axis(f"Request: {field.name}", kind, apply))
    return tuple(axes)


EASEL_AXES = _easel_axes()


def axes_for(mode: str) -> list[Axis]:
    """The axis types of a mode, in the order whose indices A1111 clients send."""
    mode = TXT2IMG if mode == TXT2IMG else IMG2IMG
    return [axis for axis in (*A1111_AXES, *EASEL_AXES) if mode in axis.modes]


def find_axis(kind: Any, mode: str, field: str) -> Axis:
    """An axis type by A1111 index (int) or label (str, case-insensitive)."""
    axes = axes_for(mode)
    if kind is None:
        return axes[0]
    if isinstance(kind, bool):
        raise InvalidRequest(field, f"expected an axis type (index or label), got {kind!r}")
    if isinstance(kind, int):
        if not 0 <= kind < len(axes):
            raise InvalidRequest(
                field, f"axis type index {kind} is out of range 0-{len(axes) - 1} for {mode}"
            )
        return axes[kind]
    if isinstance(kind, str):
        text = kind.strip()
        if text.isdigit():
            return find_axis(int(text), mode, field)
        for axis in axes:
            if axis.label.casefold() == text.casefold():
                return axis
        raise InvalidRequest(
            field, f"no axis type {kind!r} for {mode}; types: {', '.join(a.label for a in axes)}"
        )
    raise InvalidRequest(field, f"expected an axis type (index or label), got {kind!r}")


def csv_values(text: str) -> list[str]:
    """A1111's value list: CSV (quotes keep commas), each value stripped."""
    rows = csv.reader(io.StringIO(text), skipinitialspace=True)
    return [value.strip() for value in itertools.chain.from_iterable(rows)]


_NUM = r"[+-]?\s*\d+"
_DEC = r"[+-]?\s*\d+(?:\.\d*)?"
RANGE_INT = re.compile(rf"\s*({_NUM})\s*-\s*({_NUM})(?:\s*\(([+-]\d+)\s*\))?\s*")
COUNT_INT = re.compile(rf"\s*({_NUM})\s*-\s*({_NUM})(?:\s*\[(\d+)\s*])?\s*")
RANGE_FLOAT = re.compile(rf"\s*({_DEC})\s*-\s*({_DEC})(?:\s*\(([+-]\d+(?:\.\d*)?)\s*\))?\s*")
COUNT_FLOAT = re.compile(rf"\s*({_DEC})\s*-\s*({_DEC})(?:\s*\[(\d+(?:\.\d*)?)\s*])?\s*")


def _number(text: str) -> str:
    return text.replace(" ", "")


def _room(count: int, field: str) -> None:
    if count > MAX_VALUES:
        raise InvalidRequest(field, f"more than {MAX_VALUES} values")


def expand_numbers(values: list[str], kind: str, field: str) -> list[Any]:
    """Ranges and counts expanded; every value converted to the axis' number type."""
    out: list[Any] = []
    integer = kind == "int"
    for value in values:
        if value.strip() == "":
            continue
        ranged = (RANGE_INT if integer else RANGE_FLOAT).fullmatch(value)
        counted = (COUNT_INT if integer else COUNT_FLOAT).fullmatch(value)
        try:
            if ranged is not None:
                start, end = (float(_number(g)) for g in ranged.group(1, 2))
                step = float(ranged.group(3)) if ranged.group(3) else 1.0
                if step == 0:
                    raise ValueError("a step of 0")
                # sized before they are made: "1-1000000000" is refused, not built
                if integer:
                    # A1111's: the end + 1, whatever the step's sign
                    numbers = range(int(start), int(end) + 1, int(step))
                    _room(len(out) + len(numbers), field)
                    out.extend(numbers)
                else:
                    _room(len(out) + max(0, math.ceil((end + step - start) / step)), field)
                    out.extend(np.arange(start, end + step, step).tolist())
            elif counted is not None:
                start, end = (float(_number(g)) for g in counted.group(1, 2))
                count = int(float(counted.group(3))) if counted.group(3) else 1
                _room(len(out) + count, field)
                spread = np.linspace(start, end, num=count).tolist()
                out.extend(int(v) for v in spread) if integer else out.extend(spread)
            else:
                out.append(int(value) if integer else float(value))
        except InvalidRequest:
            raise
        except (ValueError, OverflowError) as exc:
            raise InvalidRequest(
                field, f"{value!r} is not a {'whole number' if integer else 'number'} or range ({exc})"
            ) from None
        _room(len(out), field)
    if not all(math.isfinite(v) for v in out):
        raise InvalidRequest(field, "values must be finite numbers")
    return out


def parse_values(axis: Axis, text: Any, dropdown: Any, csv_mode: bool, field: str) -> list[Any]:
    """An axis' values from its text (or, for a type with choices, its dropdown list, as
    A1111 does unless ``csv_mode``; an empty dropdown falls back to the text)."""
    if axis.kind == "nothing":
        return [0]
    if dropdown is not None and not isinstance(dropdown, list):
        raise InvalidRequest(f"{field}_dropdown", "expected a list of values")
    if text is None:
        text = ""
    if not isinstance(text, str):
        text = str(text) if isinstance(text, int | float) and not isinstance(text, bool) else None
        if text is None:
            raise InvalidRequest(field, 'expected the values as text, e.g. "1, 2, 3" or "1-5"')
    if axis.choices and not csv_mode and dropdown:
        raw = [str(v).strip() for v in dropdown]
        text_field = f"{field}_dropdown"
    else:
        raw, text_field = csv_values(text), field
    if axis.kind in ("int", "float"):
        values: list[Any] = expand_numbers(raw, axis.kind, text_field)
    elif axis.kind == "permutations":
        if len(raw) > 6:
            raise InvalidRequest(text_field, "Prompt order takes at most 6 tokens (720 orders)")
        values = list(itertools.permutations(raw))
    else:
        values = raw
    if not values:
        raise InvalidRequest(text_field, f"no values for the {axis.label!r} axis")
    if len(values) > MAX_VALUES:
        raise InvalidRequest(text_field, f"more than {MAX_VALUES} values")
    return values


def values_text(axis: Axis, text: Any, dropdown: Any, csv_mode: bool) -> str:
    """The values as the infotext's ``X Values`` records them (a dropdown as CSV)."""
    if axis.choices and not csv_mode and dropdown:
        buffer = io.StringIO()
        csv.writer(buffer).writerow([str(v) for v in dropdown])
        return buffer.getvalue().strip()
    return "" if text is None else str(text)
