"""The Extras tab: upscale one image or a batch with any registered upscaler (the core's
Lanczos/Nearest and every neural upscaler file), optionally blending a second one.

Gradio is imported inside ``build_tab`` so that the extension loads without it (CLI, API).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from extensions.esrgan.extras import NONE_UPSCALER, ExtrasOptions, postprocess_info, run_extras
from extensions.esrgan.loading import UpscalerFileError
from extensions.esrgan.upscaling import UpscalerInputError
from plugin_api.localization import translate


def upscaler_choices(state: Any) -> list[str]:
    host = state.host
    names = list(host.upscalers.names()) if host is not None else []
    return [NONE_UPSCALER, *names]


def upscale_images(
    state: Any, images: list[Any], options: ExtrasOptions, progress: Any = None, request: Any = None
) -> list[Any]:
    """Run the Extras operation on each image; errors become ``ValueError`` naming the cause
    (the progress text in the language of the page that sent ``request``)."""
    host = state.host
    if host is None:
        raise ValueError("the host has not started")
    results = []
    for index, image in enumerate(images):

        def report(done: int, total: int, index: int = index) -> None:
            if progress is not None:
                desc = translate("image {number}/{count}", request, number=index + 1, count=len(images))
                progress((index + done / total) / len(images), desc=desc)

        try:
            results.append(run_extras(host.upscalers.get, image, options, report))
        except (UpscalerFileError, UpscalerInputError) as exc:
            raise ValueError(str(exc)) from None
    return results


def open_images(paths: list[Any]) -> list[Any]:
    """Uploaded files through the host's image gate (size from the header before decoding)."""
    from plugin_api.errors import InvalidRequest
    from plugin_api.images import open_image

    images = []
    for index, item in enumerate(paths or []):
        path = getattr(item, "name", item)
        try:
            images.append(open_image(path, f"images.{index}"))
        except InvalidRequest as exc:
            raise ValueError(f"{path}: {exc.message}") from None
    return images


def save_results(state: Any, sources: list[Any], results: list[Any], options: ExtrasOptions) -> list[str]:
    """Save every result as A1111's Extras does (``outputs/extras-images/NNNNN.png``, the
    source's parameters kept, the upscale recorded); the host writes the files."""
    host = state.host
    save = getattr(host, "save_extras_image", None)
    if save is None:  # a host before API 1.9 cannot save them
        return []
    paths = []
    for source, result in zip(sources, results, strict=True):
        try:
            path = save(result, postprocess_info(options, result.size), getattr(source, "info", None))
        except OSError as exc:
            raise ValueError(f"could not save the result in outputs/extras-images: {exc}") from None
        paths.append(str(path))
    return paths


def single_image(value: Any) -> Any:
    """The Single image input: a file path (its text chunks, the parameters, kept) or an
    image (sent from another tab)."""
    if value is None or not isinstance(value, str | bytes):
        return value
    return open_images([value])[0]


def build_tab(state: Any) -> dict[str, Any]:
    import gradio as gr

    choices = upscaler_choices(state)
    default = next((c for c in choices if c not in (NONE_UPSCALER, "Lanczos", "Nearest")), "Lanczos")
    gr.Markdown("Upscale images with the core's Lanczos/Nearest or a neural upscaler from `models/ESRGAN`.")
    with gr.Row():
        with gr.Column():
            with gr.Tabs():
                with gr.Tab("Single image", elem_id="extras_single_tab"):
                    # a file path: Gradio's own decoding would drop the image's parameters
                    single = gr.Image(type="filepath", image_mode=None, label="Image", elem_id="extras_image")
                with gr.Tab("Batch", elem_id="extras_batch_tab"):
                    batch = gr.File(file_count="multiple", file_types=["image"], label="Images")
            with gr.Row():
                mode = gr.Radio(["Scale by", "Scale to"], value="Scale by", type="index", label="Resize")
                factor = gr.Slider(1.0, 8.0, value=2.0, step=0.05, label="Scale by", elem_id="extras_scale")
            with gr.Row():
                width = gr.Number(512, precision=0, label="Width")
                height = gr.Number(512, precision=0, label="Height")
                crop = gr.Checkbox(True, label="Crop to fit")
            upscaler_1 = gr.Dropdown(choices, value=default, label="Upscaler 1", elem_id="extras_upscaler_1")
            with gr.Row():
                upscaler_2 = gr.Dropdown(choices, value=NONE_UPSCALER, label="Upscaler 2")
                visibility = gr.Slider(0.0, 1.0, value=0.0, step=0.05, label="Upscaler 2 visibility")
            run = gr.Button("Upscale", variant="primary", elem_id="extras_run")
        with gr.Column():
            # the whole image, never cropped to a square cell
            gallery = gr.Gallery(
                label="Result", format="png", elem_id="extras_result", object_fit="contain",
                preview=True, height=560, columns=4,
            )  # fmt: skip
            info = gr.Markdown(elem_id="extras_info")

    def on_run(
        image: Any,
        files: Any,
        mode: int,
        factor: float,
        w: float,
        h: float,
        crop: bool,
        up1: str,
        up2: str,
        vis: float,
        progress: Any = gr.Progress(),
        request: Any = None,  # gr.Request (see below): the page's language for the messages
    ) -> tuple[list[Any], str]:
        try:
            images = [single_image(image)] if image is not None else open_images(files)
        except ValueError as exc:
            raise gr.Error(str(exc)) from None
        if not images:
            raise gr.Error(translate("Add an image (Single image) or some files (Batch) first.", request))
        options = ExtrasOptions(
            resize_mode=int(mode or 0),
            upscaling_resize=float(factor),
            width=int(w or 0),
            height=int(h or 0),
            crop=bool(crop),
            upscaler_1=up1 or NONE_UPSCALER,
            upscaler_2=up2 or NONE_UPSCALER,
            upscaler_2_visibility=float(vis or 0),
        )
        try:
            results = upscale_images(state, images, options, progress, request)
            saved = save_results(state, images, results, options)
        except ValueError as exc:
            raise gr.Error(str(exc)) from None
        sizes = ", ".join(f"{r.width}x{r.height}" for r in results)
        where = f"; saved: {', '.join(f'`{Path(p).name}`' for p in saved)}" if saved else ""
        message = "{count} image(s) upscaled with {upscaler}: {sizes}"
        return results, translate(
            message, request, count=len(results), upscaler=options.upscaler_1, sizes=sizes
        ) + where

    # gradio is imported lazily: a postponed "gr.Request" hint could not be resolved, and
    # Gradio passes the request only to a parameter whose resolved hint says so
    on_run.__annotations__["request"] = gr.Request | None

    run.click(
        on_run,
        inputs=[single, batch, mode, factor, width, height, crop, upscaler_1, upscaler_2, visibility],
        outputs=[gallery, info],
    )
    # "send_to_image": result galleries elsewhere get a "Send to extras" button for it
    return {
        "run": run,
        "upscaler_1": upscaler_1,
        "gallery": gallery,
        "handler": on_run,
        "send_to_image": single,
    }
