"""The event handlers of a generation form: build the request, queue it, stream its
progress and preview, then show the images; plus the small helpers (seed buttons, size
presets, refresh, interrupt, skip).

Every generation is a job in the ``JobService`` queue; the handler only follows it, so
two browser sessions generating at once each follow their own job.
"""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr

from core.errors import RequestError
from plugin_api.types import GenerationRequest
from ui import choices
from ui.cache_controls import apply_cache
from ui.family_controls import apply_family_controls, wire_family_controls
from ui.form_sections import apply_form_sections
from ui.generation_form import GenerationForm
from ui.generation_queue import SessionJobs, session_key, waiting_note
from ui.hires_controls import apply_hires
from ui.i18n import Message, language_of, say
from ui.img2img_modes import resolve_source
from ui.job_client import JobClient
from ui.language import chosen_language, request_language
from ui.progress_view import render_progress
from ui.results import wire_downloads
from ui.script_picker import apply_script
from ui.size_presets import wire_size_presets

log = logging.getLogger("easel.ui")

# A generation handler mostly waits on the job queue, which already runs one job at a
# time; Gradio's default of one concurrent call per event would make a second browser
# session wait before it could even queue its job.
GENERATE_CONCURRENCY = 16


def build_request(
    prompt: str,
    negative_prompt: str,
    model: str | None,
    sampler: str | None,
    steps: float,
    cfg_scale: float,
    late_cfg_scale: str | float | None,
    late_cfg_start: str | float | None,
    width: float,
    height: float,
    seed: float | None,
    batch_size: float,
    batch_count: float,
    init_image: Any | None = None,
    denoising_strength: float | None = None,
    vae: str | None = None,
    scheduler: str | None = None,
    styles: list[str] | None = None,
    mask: Any | None = None,
    shift: str | float | None = None,
) -> GenerationRequest:
    """The form's values as the one request type every front end uses."""
    request = GenerationRequest(
        prompt=prompt or "",
        negative_prompt=negative_prompt or "",
        seed=int(seed) if seed is not None else -1,
        steps=int(steps),
        cfg_scale=float(cfg_scale),
        late_cfg_scale=_optional_number(late_cfg_scale, "late_cfg_scale"),
        late_cfg_start=_optional_number(late_cfg_start, "late_cfg_start"),
        width=int(width),
        height=int(height),
        sampler=sampler or None,
        scheduler=scheduler or None,
        styles=list(styles or []),
        shift=_optional_number(shift, "shift"),
        model=model or None,
        vae=vae or None,
        batch_size=int(batch_size),
        batch_count=int(batch_count),
    )
    if init_image is not None:
        request.init_image = init_image.convert("RGB") if hasattr(init_image, "convert") else init_image
        request.denoising_strength = float(denoising_strength if denoising_strength is not None else 0.75)
        if mask is not None:  # inpainting: white = repaint, as A1111's uploaded mask
            request.mask = mask.convert("L") if hasattr(mask, "convert") else mask
    return request


def _optional_number(value: str | float | None, field: str) -> float | None:
    """A text field's number; empty is None (the model's recommendation)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return float(value)
    except ValueError:
        raise RequestError(field, f"must be a number, got {value!r}") from None


def _timing_line(job_id: str, result: dict[str, Any], language: str = "en") -> str:
    elapsed = result.get("elapsed_s")
    took = f" · {float(elapsed):.1f} s" if isinstance(elapsed, int | float) else ""
    return say(Message("job `{job_id}`{took}", job_id=job_id, took=took), language)


def wire_generation(form: GenerationForm, client: JobClient, host: Any, service: Any) -> gr.State:
    """Connect the form's buttons; returns the session's last-result state."""
    job_state = gr.State(None)  # the id of this session's running job
    last_result = gr.State(None)  # {"job_id", "paths", "infotexts", "seeds", "selected"}
    extra_inputs: list[Any] = (
        [form.init_image, form.denoising_strength]
        if form.init_image is not None
        else [gr.State(None), gr.State(None)]
    )
    extra_inputs += form.hires.inputs() if form.hires is not None else [gr.State(None) for _ in range(5)]
    extra_inputs.append(form.vae)
    extra_inputs += [form.scheduler, form.styles.styles]
    extra_inputs.append(form.mask if form.mask is not None else gr.State(None))
    extra_inputs.append(form.shift if form.shift is not None else gr.State(None))
    extra_inputs.append(form.distilled_cfg_scale)
    extra_inputs += form.cache.inputs() if form.cache is not None else [gr.State(None), gr.State(None)]
    # img2img's modes (ui/img2img_modes.py): which image and mask the request gets
    modes = form.img2img
    extra_inputs += modes.inputs() if modes is not None else [gr.State(None) for _ in range(11)]
    panel = form.results
    session_jobs = SessionJobs()
    section_inputs = form.sections.inputs() if form.sections else []
    script_inputs = form.script.inputs() if form.script else []

    def generate(
        prompt: str,
        negative_prompt: str,
        model: str | None,
        sampler: str | None,
        steps: float,
        cfg_scale: float,
        late_cfg_scale: str,
        late_cfg_start: str,
        width: float,
        height: float,
        seed: float | None,
        batch_size: float,
        batch_count: float,
        init_image: Any | None,
        denoising_strength: float | None,
        enable_hr: bool | None,
        hr_upscaler: str | None,
        hr_scale: float | None,
        hr_steps: float | None,
        hr_denoise: float | None,
        vae: str | None,
        scheduler: str | None,
        styles: list[str] | None,
        mask: Any | None,
        shift: str | None,
        distilled_cfg_scale: float | None,
        cache_method: str | None,
        cache_threshold: str | None,
        mode: str | None,
        mode_init_image: Any | None,
        sketch: dict[str, Any] | None,
        inpaint: dict[str, Any] | None,
        upload_image: Any | None,
        upload_mask: Any | None,
        mask_blur: float | None,
        mask_mode: int | None,
        masked_content: int | None,
        inpaint_area: int | None,
        padding: float | None,
        request: gr.Request,
        *section_values: Any,  # the form sections' values, then the Script dropdown's (script_inputs)
    ):
        language = language_of(request.headers.get("accept-language"), chosen_language(host))
        inpainting: dict[str, Any] = {}
        if modes is not None:  # the selected mode's image, mask and inpainting options
            source = resolve_source(
                mode, mode_init_image, sketch, inpaint, upload_image, upload_mask, mask_blur, mask_mode,
                masked_content, inpaint_area, padding,
            )  # fmt: skip
            init_image, mask, inpainting = source.init_image, source.mask, source.options
        elif form.init_image is not None and init_image is None:
            raise gr.Error(say("img2img needs an input image.", language))
        try:
            generation = build_request(
                prompt, negative_prompt, model, sampler, steps, cfg_scale, late_cfg_scale, late_cfg_start,
                width, height, seed, batch_size, batch_count, init_image, denoising_strength, vae, scheduler,
                styles, mask, shift,
            )  # fmt: skip
            apply_cache(generation, cache_method, cache_threshold)
            apply_family_controls(generation, service, distilled_cfg_scale)
            for name, value in inpainting.items():  # mask_blur, inpainting_fill, inpaint_full_res...
                setattr(generation, name, value)
        except RequestError as exc:
            log.info("refused a WebUI generation: %s", exc)
            raise gr.Error(str(exc)) from exc
        apply_hires(generation, enable_hr, hr_upscaler, hr_scale, hr_steps, hr_denoise)
        script_values = list(section_values[len(section_inputs) :])
        section_values = section_values[: len(section_inputs)]
        apply_form_sections(form.sections, generation, section_values, choices.model_family(service, model))
        apply_script(form.script, generation, script_values)
        try:
            job_id = client.submit(generation)
        except Exception as exc:  # invalid input: say which field, keep the form as it is
            log.info("refused a WebUI generation: %s", exc)
            raise gr.Error(str(exc)) from exc
        key = session_key(request, form.prefix)
        session_jobs.add(key, job_id)
        try:
            yield from _follow(job_id, key, language)
        finally:
            session_jobs.remove(key, job_id)

    def _follow(job_id: str, key: tuple[str, str], language: str):
        """Follow one job; while an older job of this session runs, only the last update
        (its images) is shown: the leading job owns the bar and the preview."""
        for snapshot in client.follow(job_id):
            if session_jobs.leader(key) != job_id:
                if snapshot.finished:  # cancelled while it waited (the Queue tab): nothing to show
                    return
                continue
            # Easel's own bar only (show_progress="hidden" below): no Gradio bar over the panes
            waiting = [client.queue_position(other) for other in session_jobs.waiting(key)]
            bar = render_progress(snapshot, language) + waiting_note(waiting, language)
            updates: dict[Any, Any] = {form.progress: bar, job_state: job_id}
            if not snapshot.finished:
                if snapshot.preview is not None:
                    # the preview takes the gallery's place until the images replace it
                    updates.update(preview_in_place(form, panel, snapshot.preview))
                yield updates
                continue
            result = snapshot.result or {}
            paths = client.result_paths(result)
            infotexts = client.result_infotexts(result)
            last = {
                "job_id": job_id,
                "paths": paths,
                "infotexts": infotexts,
                "seeds": client.result_seeds(result),
                "selected": 0,
            }
            info = infotexts[0] if infotexts else (snapshot.error or "")
            updates.update(
                {
                    job_state: None,
                    # the images replace the preview in its place
                    form.preview: gr.update(value=None, visible=False),
                    panel.gallery: gr.update(value=paths, visible=True),
                    panel.info: info,
                    panel.timing: _timing_line(job_id, result, language),
                    last_result: last if paths else None,
                }
            )
            yield updates
            if snapshot.status == "failed":
                raise gr.Error(snapshot.error or say("the generation failed", language))

    form.generate.click(
        generate,
        inputs=[*form.parameter_inputs(), *extra_inputs, *section_inputs, *script_inputs],
        outputs=[
            form.progress,
            form.preview,
            job_state,
            panel.gallery,
            panel.info,
            panel.timing,
            last_result,
        ],
        show_progress="hidden",
        concurrency_limit=GENERATE_CONCURRENCY,
        api_name=f"{form.prefix}_generate",
        # a click while a job runs queues another job (Gradio's default ignores it)
        trigger_mode="multiple",
    )

    def running_job(job_id: str | None, request: gr.Request) -> str | None:
        return session_jobs.leader(session_key(request, form.prefix)) or job_id

    # No toast (it covered the Generate button for seconds): the bar says "interrupted",
    # and the image as far as it got comes back as the job's result.
    def interrupt(job_id: str | None, request: gr.Request) -> None:
        log.info("WebUI interrupt: %s", client.interrupt(running_job(job_id, request)))

    def skip(job_id: str | None, request: gr.Request) -> None:
        log.info("WebUI skip: %s", client.skip(running_job(job_id, request)))

    form.interrupt.click(interrupt, inputs=[job_state], outputs=None, show_progress="hidden")
    form.skip.click(skip, inputs=[job_state], outputs=None, show_progress="hidden")
    form.random_seed.click(lambda: -1, inputs=None, outputs=[form.seed], show_progress="hidden")
    form.reuse_seed.click(
        _reuse_seed, inputs=[last_result, form.seed], outputs=[form.seed], show_progress="hidden"
    )
    wire_size_presets(form.presets, service, form.model, form.width, form.height)
    form.refresh_models.click(
        lambda current, vae: (_refresh_models(service, current), _refresh_vaes(service, vae)),
        inputs=[form.model, form.vae],
        outputs=[form.model, form.vae],
    )
    form.model.change(
        lambda name, current: _on_model_change(host, service, name, current),
        inputs=[form.model, form.sampler],
        outputs=[form.sampler, form.late_cfg_scale, form.late_cfg_start],
        show_progress="hidden",
    )
    if form.shift is not None:  # shown for flow-matching models only
        form.model.change(
            lambda name: gr.update(visible=choices.is_flow_model(service, name)),
            inputs=[form.model],
            outputs=[form.shift],
            show_progress="hidden",
        )
    wire_family_controls(form, service)  # Distilled CFG, the negative prompt, CFG per family
    wire_downloads(panel, last_result)
    return last_result


def _on_model_change(host: Any, service: Any, name: str | None, current: str | None) -> tuple[Any, Any, Any]:
    """Flow-matching models (Z-Image) and the others have different samplers; the late-CFG
    placeholders show the new model's own late CFG (what applies while they are empty)."""
    defaults = choices.model_defaults(service, name)
    names = choices.sampler_names(host, service, choices.model_family(service, name))
    if current in names:
        sampler = gr.update(choices=names)
    else:
        preferred = defaults.get("sampler")
        sampler = gr.update(
            choices=names, value=preferred if preferred in names else choices.default_sampler(names)
        )
    scale, start = choices.late_cfg_placeholders(defaults)
    return sampler, gr.update(placeholder=scale), gr.update(placeholder=start)


PREVIEW_MIN_SIDE = 256


def enlarge_preview(image: Any) -> Any:
    """Approximate previews are 1/8 of the image (16 px for 128 px): enlarge them smoothly
    (bicubic), so a preview looks like a soft version of the image, not a grid of blocks."""
    width, height = image.size
    factor = PREVIEW_MIN_SIDE // max(1, min(width, height))
    if factor <= 1:
        return image
    from PIL import Image

    return image.resize((width * factor, height * factor), Image.Resampling.BICUBIC)


def preview_in_place(form: Any, panel: Any, preview: Any) -> dict[Any, Any]:
    """Show the live preview where the gallery is (the gallery hides meanwhile)."""
    return {
        form.preview: gr.update(value=enlarge_preview(preview), visible=True),
        panel.gallery: gr.update(visible=False),
    }


def _reuse_seed(last: dict[str, Any] | None, current: float | None, request: gr.Request) -> float | None:
    """The seed of the selected (or first) image of the last result."""
    if not last or not last.get("seeds"):
        gr.Info(say("No previous seed yet.", request_language(request)))
        return current
    seeds = last["seeds"]
    index = int(last.get("selected", 0) or 0)
    return seeds[index] if index < len(seeds) else seeds[0]


def _refresh_models(service: Any, current: str | None) -> Any:
    names = choices.model_names(service)
    value = current if current in names else choices.default_model(service)
    return gr.update(choices=names, value=value)


def _refresh_vaes(service: Any, current: str | None) -> Any:
    names = choices.vae_names(service)
    return gr.update(choices=names, value=current if current in names else "Automatic")
