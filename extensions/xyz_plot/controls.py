"""The X/Y/Z plot's controls in the txt2img / img2img form (``ScriptSpec.form``).

They show under the form while its "Script" dropdown says "X/Y/Z plot" (as in A1111):
``axis_controls`` builds them (three axes and A1111's options) and ``script_args`` turns
their values into the request's ``script_args`` by name; Generate then queues the form's
own request with them, one job per plot.
"""

from __future__ import annotations

from typing import Any

from extensions.xyz_plot.axes import TXT2IMG, axes_for
from extensions.xyz_plot.plot import ARG_NAMES, DEFAULTS

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
# the gallery shows the cells after the grid: unlike A1111's default, sub images are on
FORM_DEFAULTS = {**DEFAULTS, "include_lone_images": True, "csv_mode": True, "y_type": "CFG Scale"}


def axis_labels(mode: str = TXT2IMG) -> list[str]:
    """The axis types a user may pick (A1111's names; the ones Easel cannot apply left out)."""
    return [axis.label for axis in axes_for(mode) if axis.supported]


def axis_controls(tab: str = TXT2IMG) -> list[Any]:
    """The plot's controls for the ``tab`` form, in ``script_args`` order (see
    ``script_args``); their ``elem_id``s start with ``<tab>_xyz``."""
    import gradio as gr

    prefix = f"{tab}_xyz"
    labels = axis_labels(tab)
    controls: list[Any] = []
    for letter, default in (("x", "Seed"), ("y", FORM_DEFAULTS["y_type"]), ("z", "Nothing")):
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
                gr.Checkbox(value=FORM_DEFAULTS[name], label=label, elem_id=f"{prefix}_{name}", min_width=120)
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


def a1111_args(args: dict[str, Any]) -> list[Any]:
    """The named arguments as A1111's positional ``script_args`` (types as their index in
    A1111's txt2img list, dropdowns empty: the values are text)."""
    labels = [axis.label for axis in axes_for(TXT2IMG)]
    out: list[Any] = []
    for name in ARG_NAMES:
        value = args.get(name, DEFAULTS[name])
        out.append(labels.index(value) if name.endswith("_type") and value in labels else value)
    return out
