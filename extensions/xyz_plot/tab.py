"""The X/Y/Z plot's WebUI tab.

``axis_controls`` builds the plot's own controls (three axes and A1111's options) and
``script_args`` turns their values into the request's ``script_args`` by name: the part
that moves into txt2img/img2img as a form section once the WebUI has that hook. Until
then the tab carries a compact generation form of its own and queues the request like
the txt2img tab (``generate``), one job per plot.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from extensions.xyz_plot.axes import TXT2IMG, axes_for
from extensions.xyz_plot.plot import ARG_NAMES, DEFAULTS, TITLE
from plugin_api.types import GenerationRequest

BOOLEAN_OPTIONS = (
    ("draw_legend", "Draw legend"),
    ("include_lone_images", "Include Sub Images"),
    ("include_sub_grids", "Include Sub Grids"),
    ("no_fixed_seeds", "Keep -1 for seeds"),
    ("vary_seeds_x", "Vary seeds for X"),
    ("vary_seeds_y", "Vary seeds for Y"),
    ("vary_seeds_z", "Vary seeds for Z"),
    ("csv_mode", "Use text inputs instead of dropdowns"),
)
# the tab shows the cells beside the grid: unlike A1111's default, sub images are on
TAB_DEFAULTS = {**DEFAULTS, "include_lone_images": True, "csv_mode": True, "y_type": "CFG Scale"}


def axis_labels(mode: str = TXT2IMG) -> list[str]:
    """The axis types a user may pick (A1111's names; the ones Easel cannot apply left out)."""
    return [axis.label for axis in axes_for(mode) if axis.supported]


def axis_controls(prefix: str = "xyz") -> list[Any]:
    """The plot's controls, in ``script_args`` order (see ``script_args``)."""
    import gradio as gr

    labels = axis_labels()
    controls: list[Any] = []
    for letter, default in (("x", "Seed"), ("y", TAB_DEFAULTS["y_type"]), ("z", "Nothing")):
        with gr.Row():
            kind = gr.Dropdown(
                labels,
                value=default,
                label=f"{letter.upper()} type",
                elem_id=f"{prefix}_{letter}_type",
                scale=1,
            )
            values = gr.Textbox(
                label=f"{letter.upper()} values",
                placeholder='1, 2, 3  ·  1-5  ·  1-10 (+3)  ·  1-10 [4]  ·  "a, b", c',
                elem_id=f"{prefix}_{letter}_values",
                scale=3,
            )
        controls += [kind, values]
    with gr.Row():
        for name, label in BOOLEAN_OPTIONS:
            controls.append(
                gr.Checkbox(value=TAB_DEFAULTS[name], label=label, elem_id=f"{prefix}_{name}", min_width=120)
            )
    controls.append(
        gr.Slider(0, 500, value=0, step=2, label="Grid margins (px)", elem_id=f"{prefix}_margin_size")
    )
    return controls


def script_args(*values: Any) -> dict[str, Any]:
    """``axis_controls``' values as the request's ``script_args`` (the native form, by name)."""
    x_type, x_values, y_type, y_values, z_type, z_values, *rest = values
    flags = dict(zip((name for name, _ in BOOLEAN_OPTIONS), rest[: len(BOOLEAN_OPTIONS)], strict=True))
    margin = rest[len(BOOLEAN_OPTIONS)]
    return {
        "x_type": x_type, "x_values": x_values or "",
        "y_type": y_type, "y_values": y_values or "",
        "z_type": z_type, "z_values": z_values or "",
        **{name: bool(value) for name, value in flags.items()},
        "margin_size": int(margin or 0),
    }  # fmt: skip


def _positive(value: Any) -> int | None:
    return int(value) if value and int(value) > 0 else None


def request_from_form(
    prompt: str, negative: str, seed: Any, steps: Any, cfg: Any, width: Any, height: Any, args: dict[str, Any]
) -> GenerationRequest:
    return GenerationRequest(
        prompt=prompt or "",
        negative_prompt=negative or "",
        seed=int(seed if seed is not None else -1),
        steps=_positive(steps),
        cfg_scale=float(cfg) if cfg else None,
        width=_positive(width),
        height=_positive(height),
        script_name=TITLE,
        script_args=args,
    )


def a1111_args(args: dict[str, Any]) -> list[Any]:
    """The named arguments as A1111's positional ``script_args`` (types as their index in
    A1111's txt2img list, dropdowns empty: the values are text)."""
    labels = [axis.label for axis in axes_for(TXT2IMG)]
    out: list[Any] = []
    for name in ARG_NAMES:
        value = args.get(name, DEFAULTS[name])
        out.append(labels.index(value) if name.endswith("_type") and value in labels else value)
    return out


def api_example(request: GenerationRequest) -> str:
    """The same plot for /sdapi/v1/txt2img, as A1111 clients send it."""
    body = {
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "seed": request.seed,
        **{k: v for k, v in (("steps", request.steps), ("cfg_scale", request.cfg_scale)) if v is not None},
        **{k: v for k, v in (("width", request.width), ("height", request.height)) if v is not None},
        "script_name": TITLE,
        "script_args": a1111_args(dict(request.script_args)),
    }
    return json.dumps(body, ensure_ascii=False)


def build(generate: Callable[[GenerationRequest], dict[str, Any]] | None = None) -> None:
    import gradio as gr

    gr.Markdown(
        "A grid of images over up to three parameters (A1111's X/Y/Z plot). Each cell is saved as an "
        "ordinary image with its own infotext; the labelled grid goes to `outputs/txt2img-grids`. "
        "The whole plot is one job in the queue (cancel it there)."
    )
    with gr.Row():
        prompt = gr.Textbox(label="Prompt", lines=2, elem_id="xyz_prompt", scale=3)
        negative = gr.Textbox(label="Negative prompt", lines=2, elem_id="xyz_negative", scale=2)
    with gr.Row():
        seed = gr.Number(value=-1, label="Seed", precision=0, elem_id="xyz_seed")
        steps = gr.Number(value=0, label="Steps (0: the model's)", precision=0, elem_id="xyz_steps")
        cfg = gr.Number(value=0, label="CFG scale (0: the model's)", elem_id="xyz_cfg")
        width = gr.Number(value=0, label="Width (0: the model's)", precision=0, elem_id="xyz_width")
        height = gr.Number(value=0, label="Height (0: the model's)", precision=0, elem_id="xyz_height")
    controls = axis_controls()
    go = gr.Button("Generate plot", variant="primary", elem_id="xyz_generate")
    gallery = gr.Gallery(
        label="Grid and cells", columns=5, height="auto", object_fit="contain", elem_id="xyz_gallery"
    )
    info = gr.Textbox(label="Infotexts", lines=4, elem_id="xyz_info")
    snippet = gr.Code(language="json", label="The same plot for /sdapi/v1/txt2img", elem_id="xyz_api")

    def run(p: str, n: str, s: Any, st: Any, c: Any, w: Any, h: Any, *values: Any):
        request = request_from_form(p, n, s, st, c, w, h, script_args(*values))
        if generate is None:
            return [], "Generation is not available here (no job queue).", api_example(request)
        outcome = generate(request)
        if outcome.get("error"):
            return [], f"Error: {outcome['error']}", api_example(request)
        return outcome["images"], "\n\n".join(outcome.get("infotexts") or []), api_example(request)

    go.click(
        run,
        inputs=[prompt, negative, seed, steps, cfg, width, height, *controls],
        outputs=[gallery, info, snippet],
    )
