"""The X/Y/Z plot's arguments without a model: A1111's value syntax, its axis indices
(as real clients send them), prompt S/R and order, seeds, the cell order, the legend.

References: A1111 1.10's ``scripts/xyz_grid.py`` semantics (ranges ``1-5``, ``1-5 (+2)``,
``1-10 [5]`` through ``range``/``np.arange``/``np.linspace``; CSV values; the
"Prompt order" permutations) and the txt2img indices a public A1111 client hard-codes
("x_type: 1 = Seed", "y_type: 7 = Prompt S/R").
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image

from extensions.xyz_plot.axes import axes_for, csv_values, expand_numbers, find_axis, parse_values
from extensions.xyz_plot.grid import annotate, image_grid
from extensions.xyz_plot.infotext import add_fields
from extensions.xyz_plot.plot import fix_seeds, read_plot
from plugin_api import GenerationRequest, InvalidRequest


def test_a1111_axis_indices_per_mode():
    txt2img = [axis.label for axis in axes_for("txt2img")]
    assert txt2img[:12] == ["Nothing", "Seed", "Var. seed", "Var. strength", "Steps", "Hires steps", "CFG Scale",
                            "Prompt S/R", "Prompt order", "Sampler", "Hires sampler", "Checkpoint name"]  # fmt: skip
    assert txt2img.index("Schedule type") == 17 and txt2img.index("VAE") == 29 and txt2img.index("Size") == 41
    img2img = [axis.label for axis in axes_for("img2img")]
    # img2img has no hires types and its own Image CFG Scale / Sampler entries
    assert img2img[:10] == ["Nothing", "Seed", "Var. seed", "Var. strength", "Steps", "CFG Scale",
                            "Image CFG Scale", "Prompt S/R", "Prompt order", "Sampler"]  # fmt: skip
    assert (
        find_axis(7, "txt2img", "f").label == "Prompt S/R"
        and find_axis("cfg scale", "img2img", "f").label == "CFG Scale"
    )
    with pytest.raises(InvalidRequest, match="out of range"):
        find_axis(999, "txt2img", "script_args.x_type")


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("1-5", "int", list(range(1, 6))),
        ("1-5 (+2)", "int", list(range(1, 6, 2))),
        ("10-1 (-3)", "int", list(range(10, 2, -3))),  # A1111 adds 1 to the end whatever the step
        ("1-10 [5]", "int", [int(v) for v in np.linspace(1, 10, 5)]),
        ("-1, 3, 7", "int", [-1, 3, 7]),
        ("0.5-2 (+0.5)", "float", np.arange(0.5, 2.5, 0.5).tolist()),
        ("1-2 [3]", "float", np.linspace(1, 2, 3).tolist()),
        ("7, 3.5", "float", [7.0, 3.5]),
    ],
)
def test_number_ranges_as_a1111(text, kind, expected):
    assert expand_numbers(csv_values(text), kind, "f") == expected


def test_csv_quotes_keep_commas_and_bad_numbers_name_the_field():
    assert csv_values('a, "b, c",  d') == ["a", "b, c", "d"]
    with pytest.raises(InvalidRequest) as refused:
        expand_numbers(["1", "two"], "int", "script_args.y_values")
    assert refused.value.field == "script_args.y_values"
    for huge in ("1-100000", "1-1000000000000", "0-1 (+0.000000001)", "1-2 [100000000000]"):
        with pytest.raises(InvalidRequest, match="more than"):  # refused before it is built
            expand_numbers([huge], "float" if "." in huge else "int", "f")
    with pytest.raises(InvalidRequest, match="finite"):
        expand_numbers(["nan"], "float", "f")


def test_prompt_sr_and_order_apply_as_a1111():
    base = GenerationRequest(prompt="a red circle, big", negative_prompt="red noise")
    plot = read_plot(base, {"x_type": "Prompt S/R", "x_values": "red, green", "y_type": "Prompt order",
                            "y_values": "circle, big", "csv_mode": True})  # fmt: skip
    assert plot.y.values == list(itertools.permutations(["circle", "big"]))
    green = plot.request_for(base, 1, 0, 0)
    assert (green.prompt, green.negative_prompt) == ("a green circle, big", "green noise")
    assert plot.request_for(base, 0, 1, 0).prompt == "a red big, circle"
    assert plot.x.labels == ["red", "green"] and plot.y.labels == ["circle, big", "big, circle"]


def test_seeds_fixed_once_and_varied_per_axis():
    base = GenerationRequest(seed=-1)
    plot = read_plot(base, {"x_type": "Seed", "x_values": "-1, 5", "y_type": "Steps", "y_values": "2, 3"})
    fixed = fix_seeds(plot, base)
    assert fixed.seed != -1 and plot.x.values[0] != -1 and plot.x.values[1] == 5
    kept = read_plot(base, {"x_type": "Seed", "x_values": "-1", "no_fixed_seeds": True})
    assert fix_seeds(kept, base).seed == -1 and kept.x.values == [-1]
    varied = read_plot(GenerationRequest(seed=100), {"x_type": "Steps", "x_values": "2, 3", "y_type": "CFG Scale",
                                                     "y_values": "4, 5", "vary_seeds_x": True, "vary_seeds_y": True})  # fmt: skip
    base = GenerationRequest(seed=100)
    assert [varied.request_for(base, ix, iy, 0).seed for iy in range(2) for ix in range(2)] == [
        100,
        101,
        102,
        103,
    ]


def test_costly_axis_runs_outermost():
    base = GenerationRequest()
    plot = read_plot(base, {"x_type": "Checkpoint name", "x_values": "a, b", "y_type": "Seed", "y_values": "1, 2",
                            "csv_mode": True})  # fmt: skip
    assert [ix for ix, _, _ in plot.order()] == [0, 0, 1, 1]  # each checkpoint once
    plain = read_plot(base, {"x_type": "Seed", "x_values": "1, 2", "y_type": "Steps", "y_values": "2, 3"})
    assert plain.order() == [(0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1, 0)]  # ties: X innermost


def test_dropdown_values_and_unsupported_types():
    base = GenerationRequest()
    plot = read_plot(base, {"x_type": 9, "x_values": "", "x_values_dropdown": ["Euler", "DDIM"]})
    assert plot.x.values == ["Euler", "DDIM"] and plot.x.text == "Euler,DDIM"
    with pytest.raises(InvalidRequest, match="not supported") as refused:
        read_plot(base, {"x_type": "Eta", "x_values": "0.5"})
    assert refused.value.field == "script_args.x_type"
    with pytest.raises(InvalidRequest, match="no values"):
        parse_values(find_axis("Seed", "txt2img", "f"), "", [], False, "script_args.x_values")


def test_legend_layout_and_grid_order():
    cells = [Image.new("RGB", (40, 30), (i * 60, 0, 0)) for i in range(4)]
    grid = image_grid(cells, rows=2)
    assert (
        grid.size == (80, 60)
        and grid.getpixel((45, 5)) == (60, 0, 0)
        and grid.getpixel((5, 35)) == (120, 0, 0)
    )
    labelled = annotate(grid, 40, 30, ["Seed: 1", "Seed: 2"], ["CFG Scale: 3.0", "CFG Scale: 7.0"], margin=4)
    pad_left = 40 * 3 // 4
    pad_top = labelled.height - 60 - 4
    assert labelled.width == pad_left + 80 + 4 and pad_top > 0
    assert labelled.getpixel((pad_left + 44 + 5, pad_top + 5)) == (60, 0, 0)  # the margin shifts cells
    assert labelled.getpixel((pad_left + 41, pad_top + 5)) == (255, 255, 255)  # the margin itself
    without_rows = annotate(grid, 40, 30, ["a", "b"], ["", ""])
    assert without_rows.width == 80  # no row labels: no left margin


def test_grid_infotext_fields_go_before_version():
    text = "a cat\nNegative prompt: x\nSteps: 3, Seed: 1, Version: easel-0.1.0"
    assert add_fields(text, {"Script": "X/Y/Z plot", "X Values": "1, 2"}) == (
        'a cat\nNegative prompt: x\nSteps: 3, Seed: 1, Script: X/Y/Z plot, X Values: "1, 2", Version: easel-0.1.0'
    )


def test_the_form_controls_give_a1111_positional_args_that_read_back_the_same_plot():
    from extensions.xyz_plot.controls import a1111_args, script_args
    from extensions.xyz_plot.plot import ARG_NAMES

    flags = [True, True, False, False, False, False, False, True]  # legend, sub images, ..., csv mode
    named = script_args("Seed", "1, 2", "CFG Scale", "3, 7", "Nothing", "", *flags, 4)
    positional = a1111_args(named)
    assert positional == [1, "1, 2", [], 6, "3, 7", [], 0, "", [], *flags[:7], 4, True]
    base = GenerationRequest()
    by_name, by_position = (
        read_plot(base, named),
        read_plot(base, dict(zip(ARG_NAMES, positional, strict=True))),
    )
    assert [(p.axis.label, p.values) for p in by_name.axes] == [
        (p.axis.label, p.values) for p in by_position.axes
    ]
    assert by_name.options == by_position.options
