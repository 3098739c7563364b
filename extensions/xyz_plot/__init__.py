"""X/Y/Z plot, A1111's most-used script, as a bundled extension.

A request names it as A1111's API does, ``"script_name": "X/Y/Z plot"`` with
``script_args`` positional (see ``plot.ARG_NAMES``), or by name in the native API::

    "script_name": "X/Y/Z plot",
    "script_args": {"x_type": "Seed", "x_values": "1, 2", "y_type": "CFG Scale", "y_values": "3, 7"}

The host runs the plot as one job (``register_scripts``, plugin API 1.9): each cell is an
ordinary generation, saved with its own infotext; the grid goes to
``outputs/txt2img-grids``. In the WebUI it is the "Script" dropdown's "X/Y/Z plot" under
the txt2img / img2img form (``ScriptSpec.form``: its controls are ``controls.py``'s), which
sends the form's request with these ``script_args``.
"""

from __future__ import annotations

from typing import Any

from extensions.xyz_plot import controls, plot
from plugin_api.hookspecs import hookimpl
from plugin_api.types import FormSection, ScriptSpec


@hookimpl
def register_scripts(register: Any) -> None:
    register(
        ScriptSpec(
            name=plot.TITLE,
            run=plot.run,
            validate=plot.validate,
            arg_names=plot.ARG_NAMES,
            aliases=("xyz_plot", "xyz plot", "x/y/z"),
            description="a labelled grid of images over up to three parameters",
            form=FormSection(title=plot.TITLE, build=controls.axis_controls, to_args=_form_args),
        )
    )


def _form_args(values: list[Any]) -> dict[str, Any]:
    return controls.script_args(*values)
