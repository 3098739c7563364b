"""img2img's modes (ui/img2img_modes.py): what each mode's inputs give the request, the
mask read from the canvas's brush layer, and the values A1111's API would send for the
same choices (inpainting_fill, inpainting_mask_invert, inpaint_full_res and padding)."""

from __future__ import annotations

import gradio as gr
import numpy as np
import pytest
from PIL import Image, ImageChops, ImageDraw, ImageOps

from ui.img2img_modes import MASKED_CONTENT, painted_mask, resolve_source

SIZE = (48, 32)


def background() -> Image.Image:
    rng = np.random.default_rng(0)
    return (
        Image.fromarray(rng.integers(0, 255, (SIZE[1], SIZE[0], 4), dtype=np.uint8))
        .convert("RGB")
        .convert("RGBA")
    )


def layer(box: tuple[int, int, int, int], alpha: int = 255) -> Image.Image:
    """A brush layer as the canvas sends it: transparent, painted white inside ``box``."""
    image = Image.new("RGBA", SIZE, (0, 0, 0, 0))
    ImageDraw.Draw(image).rectangle(box, fill=(255, 255, 255, alpha))
    return image


def resolve(mode: str, **values):
    args = {
        "init_image": None, "sketch": None, "inpaint": None, "upload_image": None, "upload_mask": None,
        "mask_blur": 4, "mask_mode": 0, "masked_content": 1, "inpaint_area": 0, "padding": 32,
    }  # fmt: skip
    args.update(values)
    return resolve_source(mode, **args)


def test_painted_layers_become_a_white_mask():
    # a partly transparent brush edge counts as painted, as A1111's mask (then blurred)
    mask = painted_mask([layer((2, 2, 9, 9)), layer((20, 10, 29, 19), alpha=40)], SIZE)
    expected = Image.new("L", SIZE, 0)
    ImageDraw.Draw(expected).rectangle((2, 2, 9, 9), fill=255)
    ImageDraw.Draw(expected).rectangle((20, 10, 29, 19), fill=255)
    assert ImageChops.difference(mask, expected).getbbox() is None
    assert painted_mask([Image.new("RGBA", SIZE, (255, 255, 255, 0))], SIZE) is None  # nothing painted


def test_inpaint_sends_the_untouched_image_and_the_painted_mask():
    image = background()
    value = {"background": image, "layers": [layer((5, 5, 20, 15))], "composite": image}
    source = resolve("inpaint", inpaint=value, mask_blur=7, masked_content=2, inpaint_area=1, padding=16)
    assert source.init_image.mode == "RGB"
    assert np.array_equal(np.asarray(source.init_image), np.asarray(image.convert("RGB")))
    assert np.asarray(source.mask)[5:16, 5:21].min() == 255 and np.asarray(source.mask).sum() == 255 * 16 * 11
    # the API fields A1111's UI sends for these choices
    assert source.options == {
        "mask_blur": 7, "inpainting_fill": 2, "inpaint_full_res": True, "inpaint_full_res_padding": 16,
    }  # fmt: skip
    assert MASKED_CONTENT[2] == "latent noise"
    # "Inpaint not masked": the inverted mask, as /sdapi/v1 does for inpainting_mask_invert=1
    inverted = resolve("inpaint", inpaint=value, mask_mode=1)
    assert ImageChops.difference(inverted.mask, ImageOps.invert(source.mask)).getbbox() is None


def test_sketch_draws_into_the_init_image_and_img2img_ignores_masks():
    image = background()
    drawn = image.copy()
    ImageDraw.Draw(drawn).rectangle((0, 0, 10, 10), fill=(255, 0, 0, 255))
    source = resolve(
        "sketch", sketch={"background": image, "layers": [layer((0, 0, 10, 10))], "composite": drawn}
    )
    assert source.mask is None and source.init_image.getpixel((5, 5)) == (255, 0, 0)
    plain = resolve("img2img", init_image=image, upload_mask=Image.new("L", SIZE, 255))
    assert plain.init_image is image and plain.mask is None


def test_inpaint_upload_uses_the_uploaded_mask():
    mask = Image.new("L", SIZE, 0)
    ImageDraw.Draw(mask).rectangle((0, 0, 5, 5), fill=255)
    source = resolve("inpaint_upload", upload_image=background(), upload_mask=mask.convert("RGB"))
    assert source.mask.mode == "L" and ImageChops.difference(source.mask, mask).getbbox() is None
    assert source.options["inpainting_fill"] == 1  # "original", A1111's UI default


@pytest.mark.parametrize(
    ("mode", "values", "message"),
    [
        ("img2img", {}, "input image"),
        ("sketch", {"sketch": {"background": None, "layers": [], "composite": None}}, "Sketch needs"),
        ("inpaint", {"inpaint": None}, "Inpaint needs an image"),
        (
            "inpaint",
            {"inpaint": {"background": background(), "layers": [], "composite": None}},
            "Draw a mask",
        ),
        ("inpaint_upload", {"upload_image": background()}, "image and a mask"),
        # sizes past the host's input limit are refused before any work on the image
        (
            "inpaint",
            {"inpaint": {"background": Image.new("RGBA", (4100, 8)), "layers": []}},
            "inpaint: .*4096",
        ),
        (
            "inpaint_upload",
            {"upload_image": background(), "upload_mask": Image.new("L", (8, 4100))},
            "mask: ",
        ),
    ],
)
def test_a_missing_image_or_mask_is_named(mode, values, message):
    with pytest.raises(gr.Error, match=message):
        resolve(mode, **values)


def test_send_to_takes_the_selected_images_own_parameters(tmp_path):
    """ "Send to" reads the selected image's infotext (what made it), not the form, and its
    own seed (the 2nd image of a batch has the 2nd seed)."""
    from core.saving import build_infotext
    from ui.send_to import _selected

    params = {"Steps": 9, "Sampler": "Euler", "CFG scale": 6.5, "Seed": 11, "Size": "96x64", "Mask blur": 8}
    infotexts = [build_infotext("a cat", "dark", {**params, "Seed": seed}) for seed in (11, 12)]
    last = {"paths": ["a.png", "b.png"], "infotexts": infotexts, "seeds": [11, 12], "selected": 1}
    path, selected = _selected(last)
    fields = selected["fields"]
    assert path == "b.png" and fields["seed"] == 12
    assert (fields["prompt"], fields["negative_prompt"], fields["steps"], fields["cfg_scale"]) == (
        "a cat",
        "dark",
        9,
        6.5,
    )
    assert (fields["width"], fields["height"]) == (96, 64) and selected["parsed"]["Mask blur"] == "8"
    with pytest.raises(gr.Error, match="Generate an image first"):
        _selected(None)
