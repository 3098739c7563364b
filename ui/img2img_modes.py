"""The img2img tab's input modes, as A1111's: img2img (an image), Sketch (draw on the
image: the drawing is part of the init image), Inpaint (paint a mask over the image on a
canvas) and Inpaint upload (an image and a black-and-white mask), plus the inpainting
options (mask blur, mask mode, masked content, inpaint area, padding).

The canvases are Gradio's ``ImageEditor``. Its ``format`` is PNG: the default WebP is
lossy and would change the pixels outside the mask that inpainting must keep.
``resolve_source`` turns the values of whichever mode is selected into the request's
``init_image``, ``mask`` and inpainting fields (the engine and the API already implement
them: core/sampling/img2img.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from ui.i18n import t

MODES = ("img2img", "sketch", "inpaint", "inpaint_upload")
# A1111's choices; the index is the request's value (inpainting_fill, inpainting_mask_invert,
# inpaint_full_res)
MASKED_CONTENT = ("fill", "original", "latent noise", "latent nothing")
MASK_MODES = ("Inpaint masked", "Inpaint not masked")
INPAINT_AREAS = ("Whole picture", "Only masked")
DEFAULT_MASK_BLUR = 4
DEFAULT_PADDING = 32
# the inpaint brush: white, like A1111's; the mask is wherever the brush layer is painted
MASK_COLOR = "#ffffff"
SKETCH_COLORS = ["#000000", "#ffffff", "#ff0000", "#00ff00", "#0000ff", "#ffff00"]


@dataclass
class Img2ImgSource:
    """What the selected mode gives a request."""

    init_image: Any
    mask: Any | None = None
    options: dict[str, Any] = field(default_factory=dict)  # mask_blur, inpainting_fill...


@dataclass
class Img2ImgInputs:
    mode: gr.State  # one of MODES: the selected mode tab
    tabs: gr.Tabs
    init_image: gr.Image
    sketch: gr.ImageEditor
    inpaint: gr.ImageEditor
    upload_image: gr.Image
    upload_mask: gr.Image
    mask_blur: gr.Slider
    mask_mode: gr.Radio
    masked_content: gr.Radio
    inpaint_area: gr.Radio
    padding: gr.Slider
    options_panel: gr.Accordion  # the inpainting options, shown for the inpaint modes
    prefix: str = "img2img"

    def inputs(self) -> list[Any]:
        """The values ``resolve_source`` takes, in its order."""
        return [
            self.mode, self.init_image, self.sketch, self.inpaint, self.upload_image, self.upload_mask,
            self.mask_blur, self.mask_mode, self.masked_content, self.inpaint_area, self.padding,
        ]  # fmt: skip


def _editor(prefix: str, name: str, label_key: str, brush: gr.Brush) -> gr.ImageEditor:
    return gr.ImageEditor(
        label=t(label_key),
        type="pil",
        format="png",  # lossless: the kept pixels must come back unchanged
        image_mode="RGBA",
        sources=("upload", "clipboard"),
        transforms=(),  # no crop/resize: the mask must stay aligned with the image
        layers=False,
        brush=brush,
        elem_id=f"{prefix}_{name}",
        height=360,
    )


def build_img2img_inputs(prefix: str) -> Img2ImgInputs:
    """The mode tabs and the inpainting options; call inside the form's column."""
    mode = gr.State(MODES[0])
    with gr.Tabs(elem_id=f"{prefix}_mode_tabs", selected=f"{prefix}_mode_img2img") as tabs:
        with gr.Tab(
            t("i2i.mode_img2img"), id=f"{prefix}_mode_img2img", elem_id=f"{prefix}_mode_img2img"
        ) as tab_i2i:
            init_image = gr.Image(
                label=t("gen.init_image"), type="pil", elem_id=f"{prefix}_init_image", height=256
            )
        with gr.Tab(
            t("i2i.mode_sketch"), id=f"{prefix}_mode_sketch", elem_id=f"{prefix}_mode_sketch"
        ) as tab_sketch:
            sketch = _editor(
                prefix, "sketch", "i2i.sketch",
                gr.Brush(colors=SKETCH_COLORS, default_color=SKETCH_COLORS[0], color_mode="defaults"),
            )  # fmt: skip
        with gr.Tab(
            t("i2i.mode_inpaint"), id=f"{prefix}_mode_inpaint", elem_id=f"{prefix}_mode_inpaint"
        ) as tab_inpaint:
            inpaint = _editor(
                prefix, "inpaint", "i2i.inpaint",
                gr.Brush(colors=[MASK_COLOR], default_color=MASK_COLOR, color_mode="fixed"),
            )  # fmt: skip
        with gr.Tab(
            t("i2i.mode_inpaint_upload"),
            id=f"{prefix}_mode_inpaint_upload",
            elem_id=f"{prefix}_mode_inpaint_upload",
        ) as tab_upload:
            upload_image = gr.Image(
                label=t("gen.init_image"), type="pil", elem_id=f"{prefix}_inpaint_upload_image", height=256
            )
            # white where to repaint (inpainting checkpoints read it as their extra UNet input)
            upload_mask = gr.Image(
                label=t("gen.mask"), type="pil", image_mode="L", elem_id=f"{prefix}_mask", height=256
            )
    with gr.Accordion(
        t("i2i.inpaint_options"), open=True, visible=False, elem_id=f"{prefix}_inpaint_options"
    ) as options:
        mask_blur = gr.Slider(
            0, 64, value=DEFAULT_MASK_BLUR, step=1, label=t("i2i.mask_blur"), elem_id=f"{prefix}_mask_blur"
        )
        mask_mode = gr.Radio(
            list(MASK_MODES), value=MASK_MODES[0], type="index", label=t("i2i.mask_mode"),
            elem_id=f"{prefix}_mask_mode",
        )  # fmt: skip
        masked_content = gr.Radio(
            list(MASKED_CONTENT), value=MASKED_CONTENT[1], type="index", label=t("i2i.masked_content"),
            elem_id=f"{prefix}_masked_content",
        )  # fmt: skip
        with gr.Row():
            inpaint_area = gr.Radio(
                list(INPAINT_AREAS), value=INPAINT_AREAS[0], type="index", label=t("i2i.inpaint_area"),
                elem_id=f"{prefix}_inpaint_area",
            )  # fmt: skip
            padding = gr.Slider(
                0, 256, value=DEFAULT_PADDING, step=4, label=t("i2i.padding"), elem_id=f"{prefix}_padding"
            )
    for tab, name in (
        (tab_i2i, "img2img"),
        (tab_sketch, "sketch"),
        (tab_inpaint, "inpaint"),
        (tab_upload, "inpaint_upload"),
    ):
        tab.select(
            lambda name=name: (name, gr.update(visible=name in ("inpaint", "inpaint_upload"))),
            outputs=[mode, options],
            show_progress="hidden",
        )
    inputs = Img2ImgInputs(
        mode=mode, tabs=tabs, init_image=init_image, sketch=sketch, inpaint=inpaint,
        upload_image=upload_image, upload_mask=upload_mask, mask_blur=mask_blur, mask_mode=mask_mode,
        masked_content=masked_content, inpaint_area=inpaint_area, padding=padding,
        options_panel=options, prefix=prefix,
    )  # fmt: skip
    return inputs


def editor_value(image: Any) -> dict[str, Any] | None:
    """An ImageEditor value with ``image`` as the background and nothing drawn yet."""
    if image is None:
        return None
    return {"background": image, "layers": [], "composite": image}


def mode_outputs(inputs: Img2ImgInputs) -> list[Any]:
    """The components ``select_mode`` updates."""
    return [inputs.mode, inputs.tabs, inputs.options_panel]


def select_mode(inputs: Img2ImgInputs, name: str) -> list[Any]:
    """Updates for ``mode_outputs`` that switch to mode ``name`` (used by "send to")."""
    return [
        name,
        gr.Tabs(selected=f"{inputs.prefix}_mode_{name}"),
        gr.update(visible=name in ("inpaint", "inpaint_upload")),
    ]


def painted_mask(layers: list[Any] | None, size: tuple[int, int]) -> Any | None:
    """White wherever any brush layer is painted (alpha above 0), black elsewhere; None
    when nothing is painted. Partly transparent brush edges count as painted, as A1111's
    mask does (it is blurred by ``mask_blur`` afterwards anyway)."""
    from PIL import Image, ImageChops

    mask = None
    for layer in layers or []:
        if layer is None:
            continue
        alpha = layer.convert("RGBA").getchannel("A")
        if alpha.size != size:
            alpha = alpha.resize(size, Image.Resampling.NEAREST)
        alpha = alpha.point(lambda value: 255 if value > 0 else 0)
        mask = alpha if mask is None else ImageChops.lighter(mask, alpha)
    if mask is None or mask.getbbox() is None:
        return None
    return mask


def _rgb(image: Any) -> Any:
    """An RGB image; transparent parts (a sketch drawn off the image) become white."""
    from PIL import Image

    if image.mode == "RGB":
        return image
    rgba = image.convert("RGBA")
    canvas = Image.new("RGB", rgba.size, (255, 255, 255))
    canvas.paste(rgba, mask=rgba.getchannel("A"))
    return canvas


def _checked(image: Any, field: str) -> Any:
    """``image`` when its size is within the host's input limits (before any work on it)."""
    from plugin_api.errors import InvalidRequest
    from plugin_api.images import check_size

    try:
        check_size(field, *image.size)
    except InvalidRequest as exc:
        raise gr.Error(f"{field}: {exc.message}") from None
    return image


def resolve_source(
    mode: str | None,
    init_image: Any,
    sketch: dict[str, Any] | None,
    inpaint: dict[str, Any] | None,
    upload_image: Any,
    upload_mask: Any,
    mask_blur: float | None,
    mask_mode: int | None,
    masked_content: int | None,
    inpaint_area: int | None,
    padding: float | None,
) -> Img2ImgSource:
    """The init image, mask and inpainting options of the selected mode; ``gr.Error``
    (shown in the page) when the mode's image or mask is missing."""
    from PIL import ImageOps

    mode = mode if mode in MODES else MODES[0]
    if mode == "img2img":
        if init_image is None:
            raise gr.Error("img2img needs an input image.")
        return Img2ImgSource(_checked(init_image, "init_image"))
    if mode == "sketch":
        background = (sketch or {}).get("background")
        if background is None:
            raise gr.Error("Sketch needs an image to draw on.")
        composite = (sketch or {}).get("composite") or background
        return Img2ImgSource(
            _rgb(_checked(composite, "sketch"))
        )  # A1111: the drawing is part of the init image
    if mode == "inpaint":
        background = (inpaint or {}).get("background")
        if background is None:
            raise gr.Error("Inpaint needs an image: drop one on the canvas.")
        image = _rgb(_checked(background, "inpaint"))
        mask = painted_mask((inpaint or {}).get("layers"), image.size)
        if mask is None:
            raise gr.Error("Draw a mask on the image first (paint where it should change).")
    else:
        if upload_image is None or upload_mask is None:
            raise gr.Error("Inpaint upload needs an image and a mask.")
        image = _rgb(_checked(upload_image, "init_image"))
        mask = _checked(upload_mask, "mask").convert("L")
    if int(mask_mode or 0) == 1:  # "Inpaint not masked": the API's inpainting_mask_invert
        mask = ImageOps.invert(mask)
    options = {
        "mask_blur": int(mask_blur if mask_blur is not None else DEFAULT_MASK_BLUR),
        "inpainting_fill": int(masked_content if masked_content is not None else 1),
        "inpaint_full_res": int(inpaint_area or 0) == 1,
        "inpaint_full_res_padding": int(padding if padding is not None else DEFAULT_PADDING),
    }
    return Img2ImgSource(image, mask, options)
