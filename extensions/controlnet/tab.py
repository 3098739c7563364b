"""The ControlNet tab: two units (upload, preprocessor with a preview, model, weight,
start/end, resize mode), a prompt and a Generate button that queues the job with the
units in ``extension_args["controlnet"]`` (through the host's ``generate``), and the
``alwayson_scripts`` JSON for API clients.

Gradio is imported inside ``build_tab`` so the extension loads without it (CLI, API).
The handlers are plain functions (``preview``, ``units_from_form``, ``request_from_form``)
so tests can call them without a browser.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from PIL import Image

from plugin_api.errors import InvalidRequest
from plugin_api.localization import translate
from plugin_api.types import GenerationRequest

UNIT_COUNT = 2
RESIZE_CHOICES = ["Just Resize", "Crop and Resize", "Resize and Fill"]
# per unit, in this order: enabled, image, module, model, weight, start, end, resize mode
FIELDS_PER_UNIT = 8


def preview(
    state: Any,
    image: Image.Image | None,
    module: str,
    threshold_a: float = -1,
    threshold_b: float = -1,
    request: Any = None,
):
    """(preprocessed map or None, message) for the "Preview" button; the message in the
    language of the page that sent ``request``."""
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


def units_from_form(values: list[Any]) -> list[dict[str, Any]]:
    """The form's unit widgets (FIELDS_PER_UNIT each) -> native units (enabled ones)."""
    units = []
    for start in range(0, len(values), FIELDS_PER_UNIT):
        enabled, image, module, model, weight, begin, end, resize = values[start : start + FIELDS_PER_UNIT]
        if not enabled or image is None or not model:
            continue
        units.append(
            {
                "image": image,
                "preprocessor": module or "none",
                "model": model,
                "weight": float(weight),
                "start": float(begin),
                "end": float(end),
                "resize_mode": resize,
            }
        )
    return units


def request_from_form(
    prompt: str, negative: str, seed: float, steps: float, width: float, height: float, values: list[Any]
) -> GenerationRequest:
    return GenerationRequest(
        prompt=prompt or "",
        negative_prompt=negative or "",
        seed=int(seed) if seed is not None else -1,
        steps=int(steps) if steps else None,
        width=int(width) if width else None,
        height=int(height) if height else None,
        extension_args={"controlnet": {"units": units_from_form(values)}},
    )


def api_json(values: list[Any]) -> str:
    """The same units as sd-webui-controlnet API args (images left out: send base64)."""
    args = []
    for unit in units_from_form(values):
        args.append(
            {
                "input_image": "<base64 PNG>",
                "module": unit["preprocessor"],
                "model": unit["model"],
                "weight": unit["weight"],
                "guidance_start": unit["start"],
                "guidance_end": unit["end"],
                "resize_mode": unit["resize_mode"],
            }
        )
    return json.dumps({"alwayson_scripts": {"controlnet": {"args": args}}}, indent=2)


def build_tab(state: Any, generate: Callable[[GenerationRequest], dict[str, Any]] | None = None) -> None:
    import gradio as gr

    modules = sorted(state.preprocessors())
    models = [i.name for i in state.library.scan() if not i.problem]
    gr.Markdown(
        "ControlNet models from `models/ControlNet`; preprocessors that need weights read them from "
        "`models/ControlNet/annotators`. Each enabled unit with an image and a model conditions the "
        "generation below; API clients send the same units as `alwayson_scripts.controlnet.args`."
    )
    unit_inputs: list[Any] = []
    for number in range(UNIT_COUNT):
        with gr.Accordion(f"ControlNet unit {number}", open=number == 0):
            with gr.Row():
                image = gr.Image(type="pil", label="Control image", elem_id=f"controlnet_image_{number}")
                shown = gr.Image(type="pil", label="Preprocessor preview", interactive=False)
            with gr.Row():
                enabled = gr.Checkbox(
                    value=number == 0, label="Enable", elem_id=f"controlnet_enabled_{number}"
                )
                module = gr.Dropdown(
                    modules, value="canny", label="Preprocessor", elem_id=f"controlnet_module_{number}"
                )
                model = gr.Dropdown(
                    models,
                    value=models[0] if models else None,
                    label="Model",
                    elem_id=f"controlnet_model_{number}",
                )
            with gr.Row():
                weight = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Weight")
                begin = gr.Slider(0.0, 1.0, value=0.0, step=0.01, label="Start (fraction of steps)")
                end = gr.Slider(0.0, 1.0, value=1.0, step=0.01, label="End (fraction of steps)")
                resize = gr.Radio(RESIZE_CHOICES, value="Crop and Resize", label="Resize mode")
            with gr.Row():
                threshold_a = gr.Number(value=-1, label="Threshold A (-1: default)")
                threshold_b = gr.Number(value=-1, label="Threshold B (-1: default)")
                run_preview = gr.Button("Preview preprocessor", elem_id=f"controlnet_preview_{number}")
            message = gr.Markdown()

            def on_preview(im: Any, mod: str, a: float, b: float, request: gr.Request) -> Any:
                return preview(state, im, mod, a, b, request)

            # gradio is imported here, lazily: the postponed hint "gr.Request" could not be
            # resolved from the module, and Gradio would not pass the request
            on_preview.__annotations__["request"] = gr.Request

            run_preview.click(
                on_preview,
                inputs=[image, module, threshold_a, threshold_b],
                outputs=[shown, message],
            )
            unit_inputs += [enabled, image, module, model, weight, begin, end, resize]

    with gr.Accordion("Generate with these units", open=True):
        prompt = gr.Textbox(label="Prompt", lines=2, elem_id="controlnet_prompt")
        negative = gr.Textbox(label="Negative prompt", lines=1)
        with gr.Row():
            seed = gr.Number(value=-1, label="Seed", precision=0)
            steps = gr.Number(value=0, label="Steps (0: the model's default)", precision=0)
            width = gr.Number(value=0, label="Width (0: default)", precision=0)
            height = gr.Number(value=0, label="Height (0: default)", precision=0)
        go = gr.Button("Generate", variant="primary", elem_id="controlnet_generate")
        gallery = gr.Gallery(label="Result", columns=2, elem_id="controlnet_result")
        info = gr.Markdown(elem_id="controlnet_info")
        snippet = gr.Code(language="json", label="alwayson_scripts for /sdapi/v1/txt2img")

    def run(request: gr.Request, p: str, n: str, s: float, st: float, w: float, h: float, *values: Any):
        values_list = list(values)  # (request: injected by Gradio, for the messages' language)
        if generate is None:
            message = translate("Generation is not available here (no job queue).", request)
            return [], message, api_json(values_list)
        outcome = generate(request_from_form(p, n, s, st, w, h, values_list))
        if outcome.get("error"):
            return [], translate("**Error:** {error}", request, error=outcome["error"]), api_json(values_list)
        return outcome["images"], "\n\n".join(outcome.get("infotexts") or []), api_json(values_list)

    run.__annotations__["request"] = gr.Request  # resolved here (see on_preview)
    go.click(
        run,
        inputs=[prompt, negative, seed, steps, width, height, *unit_inputs],
        outputs=[gallery, info, snippet],
    )
