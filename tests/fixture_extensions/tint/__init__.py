"""tint: blends a colour over the generated images, set in a txt2img/img2img section."""

from PIL import Image

from plugin_api import FormSection, InvalidRequest, hookimpl

COLORS = {"warm": (255, 170, 60), "cool": (60, 140, 255)}


def build(tab):
    import gradio as gr  # imported here: the CLI and the API load the extension without it

    enabled = gr.Checkbox(False, label="Tint the images", elem_id=f"{tab}_tint_enabled")
    color = gr.Radio(list(COLORS), value="warm", label="Colour", elem_id=f"{tab}_tint_color")
    strength = gr.Slider(0.0, 1.0, value=0.25, step=0.05, label="Strength", elem_id=f"{tab}_tint_strength")
    return [enabled, color, strength]  # the values to_args gets, in this order


def to_args(values):
    enabled, color, strength = values
    return [color, strength] if enabled else None  # = alwayson_scripts.tint.args


@hookimpl
def ui_form_sections():
    return [FormSection(title="Tint", build=build, to_args=to_args)]


def tint_args(request):
    """(colour, strength) from extension_args["tint"] = {"args": [colour, strength]}, or None."""
    value = request.extension_args.get("tint")
    if value is None:
        return None
    args = value.get("args") if isinstance(value, dict) else None
    if not isinstance(args, list) or len(args) != 2 or args[0] not in COLORS:
        raise InvalidRequest(
            "extension_args.tint.args", f"expected [colour, strength], colour one of {list(COLORS)}"
        )
    strength = args[1]
    if isinstance(strength, bool) or not isinstance(strength, int | float) or not 0 <= strength <= 1:
        raise InvalidRequest(
            "extension_args.tint.args.1", f"strength must be a number from 0 to 1, got {strength!r}"
        )
    return args[0], float(strength)


@hookimpl
def validate_request(request):
    tint_args(request)  # a bad value is a 422 before anything is queued


@hookimpl
def after_sample(ctx, images):
    wanted = tint_args(ctx.request)
    if wanted is None:
        return None
    color, strength = wanted
    ctx.results["tint"] = ctx.request.extension_args["tint"]  # what arrived: job result, infotext
    overlay = Image.new("RGB", images[0].size, COLORS[color])
    return [Image.blend(image.convert("RGB"), overlay, strength) for image in images]
