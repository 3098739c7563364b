"""The parameter form shared by txt2img and img2img (A1111's layout): prompts, model,
sampler, steps, CFG, size with presets, seed with random/reuse, batch; the action
buttons; the progress bar and live preview; the results panel."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ui import choices
from ui.cache_controls import CacheControls, build_cache_controls
from ui.card_browser import CardBrowser, build_card_browser, wire_card_browser
from ui.family_controls import DISTILLED_CFG_LABEL, negative_prompt_state
from ui.form_sections import FormSections, build_form_sections
from ui.hires_controls import HiresControls, build_hires_controls
from ui.i18n import t
from ui.img2img_modes import Img2ImgInputs, build_img2img_inputs
from ui.progress_view import render_progress
from ui.results import ResultsPanel, build_results_panel
from ui.script_picker import ScriptPicker, build_script_picker
from ui.size_presets import SizePresets, build_size_presets
from ui.styles_picker import StylesPicker, build_styles_picker, wire_styles_picker


@dataclass
class GenerationForm:
    prefix: str  # "txt2img" | "img2img": elem_id prefix
    prompt: gr.Textbox
    negative_prompt: gr.Textbox
    model: gr.Dropdown
    refresh_models: gr.Button
    vae: gr.Dropdown  # A1111's SD VAE: Automatic / None / a file
    sampler: gr.Dropdown
    scheduler: gr.Dropdown  # A1111's "Schedule type", beside the sampler
    styles: StylesPicker  # A1111's prompt styles (styles.csv)
    steps: gr.Slider
    cfg_scale: gr.Slider
    # FLUX.1-dev's guidance embedding (Forge's "Distilled CFG Scale"); hidden for the
    # models that take none (ui/family_controls.py)
    distilled_cfg_scale: gr.Slider
    # the family whose defaults CFG shows: a change of family resets CFG (ui/family_controls.py)
    shown_family: gr.State
    late_cfg_scale: gr.Textbox  # empty: the model's recommendation
    late_cfg_start: gr.Textbox
    width: gr.Slider
    height: gr.Slider
    presets: SizePresets  # the model's sizes and the far-above-native hint
    seed: gr.Number
    random_seed: gr.Button
    reuse_seed: gr.Button
    batch_size: gr.Slider
    batch_count: gr.Slider
    generate: gr.Button
    interrupt: gr.Button
    skip: gr.Button
    progress: gr.HTML
    preview: gr.Image
    results: ResultsPanel
    init_image: gr.Image | None = None
    shift: gr.Textbox | None = None  # flow-matching models only (hidden for the others)
    interrogate: gr.Button | None = None  # img2img: caption the init image into the prompt
    denoising_strength: gr.Slider | None = None
    mask: gr.Image | None = None  # img2img's inpaint upload: white = repaint
    img2img: Img2ImgInputs | None = None  # img2img only: the modes (sketch, inpaint...)
    hires: HiresControls | None = None  # txt2img only
    cache: CacheControls | None = None  # the step cache accordion
    sections: FormSections | None = None  # extensions' accordions (ui_form_sections)
    script: ScriptPicker | None = None  # the "Script" dropdown (register_scripts), last
    cards: CardBrowser | None = None  # the extra-networks card browser under the prompt

    @property
    def cache_method(self) -> gr.Dropdown | None:
        return self.cache.method if self.cache is not None else None

    @property
    def cache_threshold(self) -> gr.Textbox | None:
        return self.cache.threshold if self.cache is not None else None

    def parameter_inputs(self) -> list[gr.components.Component]:
        """The inputs of a generation, in the order ``build_request`` takes them."""
        return [
            self.prompt,
            self.negative_prompt,
            self.model,
            self.sampler,
            self.steps,
            self.cfg_scale,
            self.late_cfg_scale,
            self.late_cfg_start,
            self.width,
            self.height,
            self.seed,
            self.batch_size,
            self.batch_count,
        ]


def build_generation_form(
    prefix: str, host: object, service: object, img2img: bool = False
) -> GenerationForm:
    models = choices.model_names(service)
    default_model = choices.default_model(service)
    samplers = choices.sampler_names(host, service, choices.model_family(service, default_model))
    defaults = choices.model_defaults(service, default_model)
    default_sampler = defaults.get("sampler")
    if default_sampler not in samplers:
        default_sampler = choices.default_sampler(samplers)
    size_w = defaults.get("width", choices.DEFAULT_SIZE)
    size_h = defaults.get("height", choices.DEFAULT_SIZE)
    late_placeholder, late_start_placeholder = choices.late_cfg_placeholders(defaults)
    default_cfg = defaults.get("cfg_scale", choices.DEFAULT_CFG)
    default_distilled = defaults.get("distilled_cfg_scale")
    init_image = denoising = mask = interrogate = modes = None
    with gr.Row(equal_height=False):
        with gr.Column(scale=6):
            prompt = gr.Textbox(
                label=t("gen.prompt"),
                placeholder=t("gen.prompt_placeholder"),
                elem_id=f"{prefix}_prompt",
                lines=3,
            )
            negative_prompt = gr.Textbox(
                label=t("gen.negative_prompt"),
                # the default_negative_prompt setting, re-read on each page load: every
                # front end fills the same one (core/request_defaults.py)
                value=lambda: choices.default_negative_prompt(host),
                elem_id=f"{prefix}_neg_prompt",
                lines=2,
                # disabled, with a note, where the model ignores it (FLUX.1 at CFG 1)
                **negative_prompt_state(service, default_model, default_cfg),
            )
            styles = build_styles_picker(prefix, host)
            wire_styles_picker(styles, prompt, negative_prompt, host)
            cards = build_card_browser(prefix, host, service)
        with gr.Column(scale=1, min_width=160):
            generate = gr.Button(
                t("gen.generate"), variant="primary", elem_id=f"{prefix}_generate", size="lg"
            )
            with gr.Row():
                interrupt = gr.Button(t("gen.interrupt"), elem_id=f"{prefix}_interrupt", size="sm")
                skip = gr.Button(t("gen.skip"), elem_id=f"{prefix}_skip", size="sm")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            if img2img:
                # A1111's modes: img2img, sketch, inpaint (a canvas), inpaint upload
                modes = build_img2img_inputs(prefix)
                init_image, mask = modes.init_image, modes.upload_mask
                interrogate = gr.Button(t("gen.interrogate"), elem_id=f"{prefix}_interrogate", size="sm")
                denoising = gr.Slider(
                    0.0, 1.0, value=0.75, step=0.01, label=t("gen.denoising"), elem_id=f"{prefix}_denoising"
                )
            with gr.Row():
                model = gr.Dropdown(
                    choices=models,
                    value=lambda: choices.default_model(service),  # sd_model_checkpoint, on each load
                    label=t("gen.model"),
                    elem_id=f"{prefix}_model",
                    scale=5,
                )
                refresh_models = gr.Button(
                    t("gen.refresh_models"),
                    elem_id=f"{prefix}_refresh_models",
                    size="sm",
                    scale=0,
                    min_width=40,
                )
                vae = gr.Dropdown(
                    choices=choices.vae_names(service),
                    value=choices.default_vae(host),
                    label=t("gen.vae"),
                    elem_id=f"{prefix}_vae",
                    scale=3,
                )
            with gr.Row():
                sampler = gr.Dropdown(
                    choices=samplers,
                    value=default_sampler,
                    label=t("gen.sampler"),
                    elem_id=f"{prefix}_sampler",
                )
                scheduler = gr.Dropdown(
                    choices=choices.schedule_labels(),
                    value=choices.schedule_labels()[0],
                    label=t("gen.scheduler"),
                    elem_id=f"{prefix}_scheduler",
                )
                steps = gr.Slider(
                    1,
                    150,
                    value=defaults.get("steps", choices.DEFAULT_STEPS),
                    step=1,
                    label=t("gen.steps"),
                    elem_id=f"{prefix}_steps",
                )
            cfg_scale = gr.Slider(
                1.0,
                30.0,
                value=default_cfg,
                step=0.5,
                label=t("gen.cfg"),
                elem_id=f"{prefix}_cfg",
            )
            # Forge's slider: its name, range and step; FLUX.1-dev's default 3.5
            distilled_cfg_scale = gr.Slider(
                0.0, 30.0, value=default_distilled if default_distilled is not None else 3.5, step=0.1,
                label=DISTILLED_CFG_LABEL, elem_id=f"{prefix}_distilled_cfg",
                visible=default_distilled is not None,
            )  # fmt: skip
            with gr.Row():
                # empty by default, so a model's own late CFG (its easel.json) applies and
                # switching models never carries one model's setting to another; the
                # placeholders show that setting. Text fields, not gr.Number: an empty
                # Number shows and sends 0, a real value.
                late_cfg_scale = gr.Textbox(
                    value="", label=t("gen.late_cfg"), info=t("gen.late_cfg_info"),
                    placeholder=late_placeholder, elem_id=f"{prefix}_late_cfg", max_lines=1,
                )  # fmt: skip
                late_cfg_start = gr.Textbox(
                    value="", label=t("gen.late_cfg_start"), placeholder=late_start_placeholder,
                    elem_id=f"{prefix}_late_cfg_start", max_lines=1,
                )  # fmt: skip
            # the sigma shift of flow-matching models (Z-Image users set it); empty: the
            # model's own. A text field like late CFG, so empty never sends 0.
            shift = gr.Textbox(
                value="", label=t("gen.shift"), info=t("gen.shift_info"), elem_id=f"{prefix}_shift",
                max_lines=1, visible=choices.is_flow_model(service, default_model),
            )  # fmt: skip
            with gr.Row():
                width = gr.Slider(
                    64,
                    2048,
                    value=size_w,
                    step=8,
                    label=t("gen.width"),
                    elem_id=f"{prefix}_width",
                )
                height = gr.Slider(
                    64,
                    2048,
                    value=size_h,
                    step=8,
                    label=t("gen.height"),
                    elem_id=f"{prefix}_height",
                )
            presets = build_size_presets(prefix, service, default_model)  # follow the model
            shown_family = gr.State(choices.model_family(service, default_model))
            with gr.Row():
                seed = gr.Number(
                    value=-1, precision=0, label=t("gen.seed"), elem_id=f"{prefix}_seed", scale=5
                )
                random_seed = gr.Button(
                    t("gen.random_seed"), elem_id=f"{prefix}_random_seed", size="sm", scale=0, min_width=40
                )
                reuse_seed = gr.Button(
                    t("gen.reuse_seed"), elem_id=f"{prefix}_reuse_seed", size="sm", scale=0, min_width=40
                )
            hires = None if img2img else build_hires_controls(prefix, host)
            cache = build_cache_controls(prefix)
            with gr.Row():
                batch_size = gr.Slider(
                    1, 8, value=1, step=1, label=t("gen.batch_size"), elem_id=f"{prefix}_batch_size"
                )
                batch_count = gr.Slider(
                    1, 16, value=1, step=1, label=t("gen.batch_count"), elem_id=f"{prefix}_batch_count"
                )
            sections = build_form_sections(prefix, host, service, model)  # ControlNet units...
            script = build_script_picker(prefix, host)  # X/Y/Z plot...
        with gr.Column(scale=1):
            progress = gr.HTML(render_progress(None), label=t("gen.progress"), elem_id=f"{prefix}_progress")
            # shown only while a job samples, in the gallery's place and size (see
            # ui/generation_run.preview_in_place): the images replace it where it was
            preview = gr.Image(
                label=t("gen.preview"), elem_id=f"{prefix}_preview", interactive=False, height=420,
                type="pil", visible=False,
            )  # fmt: skip
            results = build_results_panel(prefix, with_send_to_txt2img=img2img)
    wire_card_browser(cards, prompt, model, host, service)
    return GenerationForm(
        prefix=prefix,
        prompt=prompt,
        negative_prompt=negative_prompt,
        model=model,
        refresh_models=refresh_models,
        vae=vae,
        sampler=sampler,
        scheduler=scheduler,
        styles=styles,
        steps=steps,
        cfg_scale=cfg_scale,
        distilled_cfg_scale=distilled_cfg_scale,
        shown_family=shown_family,
        late_cfg_scale=late_cfg_scale,
        late_cfg_start=late_cfg_start,
        width=width,
        height=height,
        presets=presets,
        seed=seed,
        random_seed=random_seed,
        reuse_seed=reuse_seed,
        batch_size=batch_size,
        batch_count=batch_count,
        generate=generate,
        interrupt=interrupt,
        skip=skip,
        progress=progress,
        preview=preview,
        results=results,
        hires=hires,
        cache=cache,
        sections=sections,
        script=script,
        cards=cards,
        init_image=init_image,
        interrogate=interrogate,
        shift=shift,
        denoising_strength=denoising,
        mask=mask,
        img2img=modes,
    )
