"""The "Script" dropdown of the txt2img / img2img form (ui/script_picker.py): which
scripts it lists, which controls show, and what Generate puts into the request
(``script_name`` + ``script_args``), with the bundled X/Y/Z plot's real controls.

The browser test (tests/test_webui_browser.py, X/Y/Z plot from the txt2img form) drives
the same path end to end."""

from __future__ import annotations

import re
from types import SimpleNamespace

import gradio as gr
import pytest

import extensions.xyz_plot as xyz_plot
from core.plugins.registries import Registry
from extensions.xyz_plot.plot import read_plot
from plugin_api import FormSection, InvalidRequest
from plugin_api.types import GenerationRequest, GenerationResult, ScriptSpec
from ui.script_picker import NO_SCRIPT, apply_script, build_script_picker


def _host(*extra: ScriptSpec) -> SimpleNamespace:
    scripts = Registry("script", ScriptSpec)
    xyz_plot.register_scripts(scripts.register_for("xyz_plot"))  # the bundled extension's own hook
    for spec in extra:
        scripts.add(spec, "other")
    return SimpleNamespace(scripts=scripts)


def _picker(tab: str, host: SimpleNamespace):
    with gr.Blocks() as blocks:
        picker = build_script_picker(tab, host)
    picker.blocks = blocks
    return picker


def _run(request, args, ctx):
    return GenerationResult(images=[])


def test_the_xyz_plot_controls_send_the_plot_as_script_args():
    picker = _picker("txt2img", _host())
    assert picker.dropdown.choices == [(NO_SCRIPT, NO_SCRIPT), ("X/Y/Z plot", "X/Y/Z plot")]
    (xyz,) = picker.scripts
    assert xyz.column.visible is False  # shown only once chosen
    (show_chosen,) = [f.fn for f in picker.blocks.fns.values()]  # the dropdown's change event
    assert show_chosen("X/Y/Z plot")["visible"] is True and show_chosen(NO_SCRIPT)["visible"] is False
    ids = [c.elem_id for c in xyz.components]
    assert ids[:2] == ["txt2img_xyz_x_type", "txt2img_xyz_x_values"]
    values = [c.value for c in xyz.components]  # what the browser sends untouched...
    values[1], values[3] = "1, 2", "3, 7"  # ...with the user's X (Seed) and Y (CFG Scale) values
    request = GenerationRequest(prompt="a star", seed=5)
    apply_script(picker, request, [NO_SCRIPT, *values])
    assert request.script_name is None and request.script_args == []  # "None": an ordinary generation

    apply_script(picker, request, ["X/Y/Z plot", *values])
    assert request.script_name == "X/Y/Z plot"
    assert request.script_args["x_type"] == "Seed" and request.script_args["y_type"] == "CFG Scale"
    plot = read_plot(request, request.script_args)  # what the job will run
    assert [(p.axis.label, p.values) for p in plot.axes] == [
        ("Seed", [1, 2]),
        ("CFG Scale", [3.0, 7.0]),
        ("Nothing", [0]),  # A1111 runs "Nothing" as one value
    ]
    assert plot.options["include_lone_images"] is True  # the gallery gets the cells after the grid


def test_img2img_lists_scripts_for_its_mode_and_skips_broken_controls():
    def broken():
        raise RuntimeError("controls exploded")

    txt_only = ScriptSpec(name="Prompt matrix", run=_run, modes=("txt2img",))
    bad = ScriptSpec(name="Bad", run=_run, form=FormSection(title="Bad", build=broken))
    picker = _picker("img2img", _host(txt_only, bad))
    assert [value for _, value in picker.dropdown.choices] == [NO_SCRIPT, "X/Y/Z plot", "Bad"]
    assert picker.scripts[1].error == "RuntimeError: controls exploded"
    xyz_values = [c.value for c in picker.scripts[0].components]
    assert len(picker.inputs()) == 1 + len(xyz_values)  # the broken script sends nothing
    with pytest.raises(gr.Error, match="Bad: its controls failed to build"):
        apply_script(picker, GenerationRequest(), ["Bad", *xyz_values])
    with pytest.raises(gr.Error, match="'Nope' is not a registered script"):
        apply_script(picker, GenerationRequest(), ["Nope", *xyz_values])


def test_a_refusal_in_to_args_names_the_script():
    def refuse(values):
        raise InvalidRequest("script_args.rows", "must be positive")

    spec = ScriptSpec(
        name="Grid", run=_run, form=FormSection(title="Grid", build=lambda: gr.Number(-1), to_args=refuse)
    )
    picker = _picker("txt2img", SimpleNamespace(scripts=[spec]))
    with pytest.raises(gr.Error, match=re.escape("Grid: script_args.rows: must be positive")):
        apply_script(picker, GenerationRequest(), ["Grid", -1])
