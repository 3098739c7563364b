"""The ControlNet accordion inside the txt2img and img2img forms (sd-webui-controlnet's
place): ``UNIT_COUNT`` units, each with an enable box, a control image, a preprocessor
(with a preview), a model, weight, start/end, resize mode, control mode, pixel perfect,
the preprocessor resolution and thresholds. The form's own prompt, sampler, CFG, size,
batch and hires fix apply.

``to_args`` turns the widgets' values into sd-webui-controlnet's unit dicts, the list a
``/sdapi/v1`` client sends as ``alwayson_scripts.controlnet.args`` (the host encodes the
images as base64 PNG), so the WebUI and the API take one path (``units.parse_units``).

Gradio is imported inside ``build_section`` so the extension loads without it (CLI, API).
``preview`` and ``to_args`` are plain functions, tested without a browser.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from extensions.controlnet.units import CONTROL_MODES, RESIZE_LABELS
from plugin_api.errors import InvalidRequest
from plugin_api.localization import translate

UNIT_COUNT = 3  # sd-webui-controlnet's default number of units
RESIZE_CHOICES = list(RESIZE_LABELS.values())  # Just Resize, Crop and Resize, Resize and Fill
# per unit, in this order (sd-webui-controlnet's API keys)
UNIT_KEYS = (
    "enabled",
    "input_image",
    "module",
    "model",
    "weight",
    "guidance_start",
    "guidance_end",
    "resize_mode",
    "control_mode",
    "pixel_perfect",
    "processor_res",
    "threshold_a",
    "threshold_b",
)
FIELDS_PER_UNIT = len(UNIT_KEYS)


def preview(
    state: Any,
    image: Image.Image | None,
    module: str,
    threshold_a: float = -1,
    threshold_b: float = -1,
    request: Any = None,  # gr.Request: the page's language for the message
) -> tuple[Image.Image | None, str]:
    """(preprocessed map or None, message) for a unit's "Preview" button."""
    from extensions.controlnet import find_preprocessor
    from extensions.controlnet.preprocessors import PreprocessorWeightsMissing
    from extensions.controlnet.units import ControlUnit

    if image is None:
        return None, translate("Upload a control image first.", request)
    probe = ControlUnit(index=0, field="controlnet", image=image, preprocessor=module or "none", model="")
    try:
        spec = find_preprocessor(probe)
        out = spec.process(
            image.convert("RGB"),
            threshold_a=None if threshold_a is None or threshold_a < 0 else threshold_a,
            threshold_b=None if threshold_b is None or threshold_b < 0 else threshold_b,
            resolution=512,
        )
    except (InvalidRequest, PreprocessorWeightsMissing) as exc:
        return None, translate("**Error:** {error}", request, error=exc)
    return out.convert("RGB"), f"`{spec.name}`: {out.width}x{out.height}"


def _unit_args(index: int, values: list[Any]) -> dict[str, Any]:
    raw = dict(zip(UNIT_KEYS, values, strict=True))
    if not raw["enabled"]:
        return {"enabled": False}  # keeps the other units' positions (their index)
    if not raw["model"]:
        raise InvalidRequest(
            f"alwayson_scripts.controlnet.args.{index}.model",
            f"ControlNet unit {index} is enabled: choose a model",
        )
    unit: dict[str, Any] = {
        "enabled": True,
        "module": raw["module"] or "none",
        "model": raw["model"],
        "weight": float(raw["weight"]),
        "guidance_start": float(raw["guidance_start"]),
        "guidance_end": float(raw["guidance_end"]),
        "resize_mode": raw["resize_mode"],
        "control_mode": raw["control_mode"],
        "pixel_perfect": bool(raw["pixel_perfect"]),
        "processor_res": int(raw["processor_res"]),
        "threshold_a": float(raw["threshold_a"] if raw["threshold_a"] is not None else -1),
        "threshold_b": float(raw["threshold_b"] if raw["threshold_b"] is not None else -1),
    }
    if raw["input_image"] is not None:  # none: img2img uses its init image (txt2img refuses)
        unit["input_image"] = raw["input_image"]
    return unit


def to_args(values: list[Any]) -> list[dict[str, Any]] | None:
    """The section's values (FIELDS_PER_UNIT per unit) -> ``alwayson_scripts.controlnet.args``
    (one dict per unit, disabled ones as ``{"enabled": false}``); None when none is enabled."""
    units = [
        _unit_args(index, values[start : start + FIELDS_PER_UNIT])
        for index, start in enumerate(range(0, len(values), FIELDS_PER_UNIT))
    ]
    return units if any(unit["enabled"] for unit in units) else None


def build_section(state: Any, tab: str) -> list[Any]:
    import gradio as gr

    modules = sorted(state.preprocessors())
    models = [i.name for i in state.library.scan() if not i.problem]
    inputs: list[Any] = []
    with gr.Tabs():
        for number in range(UNIT_COUNT):
            prefix = f"{tab}_controlnet"
            with gr.Tab(f"Unit {number}", elem_id=f"{prefix}_unit_{number}"):
                with gr.Row():
                    image = gr.Image(
                        type="pil", label="Control image", elem_id=f"{prefix}_image_{number}", height=200
                    )
                    shown = gr.Image(type="pil", label="Preprocessor preview", interactive=False, height=200)
                with gr.Row():
                    enabled = gr.Checkbox(value=False, label="Enable", elem_id=f"{prefix}_enabled_{number}")
                    pixel_perfect = gr.Checkbox(value=False, label="Pixel Perfect")
                with gr.Row():
                    module = gr.Dropdown(
                        modules, value="canny", label="Preprocessor", elem_id=f"{prefix}_module_{number}"
                    )
                    model = gr.Dropdown(
                        models,
                        value=models[0] if models else None,
                        label="Model",
                        elem_id=f"{prefix}_model_{number}",
                    )
                with gr.Row():
                    weight = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Control Weight")
                    begin = gr.Slider(0.0, 1.0, value=0.0, step=0.01, label="Starting Control Step")
                    end = gr.Slider(0.0, 1.0, value=1.0, step=0.01, label="Ending Control Step")
                with gr.Row():
                    resolution = gr.Slider(64, 2048, value=512, step=8, label="Preprocessor Resolution")
                    threshold_a = gr.Number(value=-1, label="Threshold A (-1: default)")
                    threshold_b = gr.Number(value=-1, label="Threshold B (-1: default)")
                control_mode = gr.Radio(list(CONTROL_MODES), value=CONTROL_MODES[0], label="Control Mode")
                resize = gr.Radio(RESIZE_CHOICES, value="Crop and Resize", label="Resize Mode")
                with gr.Row():
                    run_preview = gr.Button(
                        "Preview preprocessor", elem_id=f"{prefix}_preview_{number}", size="sm"
                    )
                message = gr.Markdown()

                def on_preview(im: Any, mod: str, a: float, b: float, request: gr.Request) -> Any:
                    return preview(state, im, mod, a, b, request)

                # gradio is imported here, so the postponed hint "gr.Request" cannot be
                # resolved: give Gradio the class itself, or it passes no request
                on_preview.__annotations__["request"] = gr.Request

                run_preview.click(
                    on_preview,
                    inputs=[image, module, threshold_a, threshold_b],
                    outputs=[shown, message],
                )
                inputs += [
                    enabled,
                    image,
                    module,
                    model,
                    weight,
                    begin,
                    end,
                    resize,
                    control_mode,
                    pixel_perfect,
                    resolution,
                    threshold_a,
                    threshold_b,
                ]  # fmt: skip  (UNIT_KEYS' order)
    return inputs
