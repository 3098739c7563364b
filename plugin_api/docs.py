"""Render the hook reference (docs/extensions.md's generated part) from the hookspecs,
so the documentation cannot drift from the code (a test compares them)."""

from __future__ import annotations

import inspect

from plugin_api import hookspecs, types

BEGIN = "<!-- BEGIN GENERATED HOOK REFERENCE: python -m plugin_api.docs -->"
END = "<!-- END GENERATED HOOK REFERENCE -->"


def hook_names() -> list[str]:
    return [
        name
        for name, fn in vars(hookspecs).items()
        if inspect.isfunction(fn) and hasattr(fn, f"{hookspecs.PROJECT_NAME}_spec")
    ]


# A1111 (modules/script_callbacks.py and scripts.Script) -> Easel, for porting. Every Easel
# name here must be a hook, a context field or a helper that exists (tests/test_hook_docs.py).
PORTING_TABLE: tuple[tuple[str, str, str], ...] = (
    (
        "`Script.title()` / extension folder",
        "the extension's name",
        'the folder name (or `.py` stem) names the extension, as in A1111; `alwayson_scripts["<title>"]` reaches `request.extension_args["<name>"]`',
    ),
    (
        "`Script.ui()` / `show()` returning `AlwaysVisible`",
        "`ui_form_sections(host, tab)` / `FormSection`",
        "an accordion in txt2img/img2img; `to_args(values)` gives `alwayson_scripts[name].args`, "
        "which reach `request.extension_args[name]` from the WebUI and the APIs alike",
    ),
    (
        "`Script.process(p)` / `before_process`",
        "`transform_prompt(request, ctx)`",
        "prompts, seeds, extension args; before the model loads",
    ),
    (
        "`p.all_prompts` / `p.all_seeds` / `p.all_negative_prompts`",
        "`ctx.prompts` / `ctx.seeds` / `ctx.negative_prompts`",
        "one entry per image, set in `transform_prompt`",
    ),
    (
        "`Script.process_batch(p, ...)` / `before_process_batch`",
        "`before_sample(ctx)`",
        "once per request (not per batch): the model is loaded",
    ),
    (
        "`Script.postprocess_batch` / `postprocess_batch_list`",
        "`after_sample(ctx, images)`",
        "once per batch; return a new list to replace the images",
    ),
    ("`Script.postprocess_image`", "`after_sample(ctx, images)`", "handle each image of the list"),
    (
        "`Script.postprocess(p, processed)`",
        "`generation_finished(ctx, result)`",
        "once per request, after saving",
    ),
    (
        "`on_before_image_saved` / `on_image_saved`",
        "`image_saved(ctx, path)`",
        "after the atomic write; metadata goes in `ctx.extra_params` / `ctx.results` before",
    ),
    (
        "`p.extra_generation_params[k] = v`",
        "`ctx.extra_params[k] = v` / `ctx.results[name] = {...}`",
        "strings / structured; both reach the infotext, `info.extra_generation_params` and the job result",
    ),
    (
        "`on_cfg_denoiser` (extra conditioning)",
        "`denoiser_kwargs(ctx, step)`",
        "extra denoiser inputs, merged across extensions",
    ),
    (
        "`on_cfg_denoiser` (change `x`, the conds, the CFG scale)",
        "`before_denoiser(ctx, call)`",
        "every denoiser call; the uncond/cond halves and `call.cfg_scale`",
    ),
    (
        "`on_cfg_denoised` / ComfyUI pre-CFG",
        "`after_denoiser(ctx, call)`",
        "`call.uncond_pred` / `call.cond_pred` before CFG",
    ),
    (
        "`on_cfg_after_cfg` / ComfyUI `sampler_post_cfg_function`",
        "`after_cfg(ctx, call)`",
        "`call.prediction` after CFG, with both halves readable (CFG rescale)",
    ),
    ("`on_extra_noise` / initial noise", "`prepare_noise(ctx, noise)`", "once per sampling pass"),
    (
        "ComfyUI model patches (`set_model_unet_function_wrapper`, FreeU)",
        "`patch_denoiser(ctx, denoiser)`",
        "a context manager around one sampling pass",
    ),
    (
        "`on_cfg_after_cfg` (read only) / step callback",
        "`on_step(ctx, step)`",
        "`step.denoised`, `step.latents`",
    ),
    (
        "`extra_networks.register_extra_network(ExtraNetwork)`",
        "`register_extra_networks(register)`",
        "`<name:args>` tags; `activate(ctx, params_list)` once per request, `deactivate` at its end",
    ),
    ("`on_model_loaded`", "`model_loaded(ctx, model)`", "not for a cached model"),
    (
        "`on_app_started(demo, app)`",
        "`register_api_routes(router)` / `startup(host)`",
        "routes sit behind `--api-auth` like the host's",
    ),
    ("`on_ui_tabs`", "`ui_tabs(host)`", "Gradio 6 (requirements.lock)"),
    (
        "`on_ui_settings` + `shared.opts.x`",
        "`register_settings(register)` + `ctx.settings[key]`",
        "`host.get_setting` / `host.set_setting` outside a generation",
    ),
    (
        "`sd_samplers` additions",
        "`register_samplers(register)`",
        "a diffusers scheduler from the model's config, or a k-diffusion-style function (`SamplerSpec.sample`)",
    ),
    ("`modules.upscaler.Upscaler`", "`register_upscalers(register, host)`", "used by hires fix and Extras"),
    ("`on_script_unloaded`", "`shutdown(host)`", ""),
    ("`state.interrupted`", "`ctx.is_cancelled()`", ""),
    (
        "an exception in `process`",
        "`raise InvalidRequest(field, message)`",
        "a 422 naming the field; `generation_failed(ctx, error)` is told",
    ),
)


def render_porting_table() -> str:
    rows = ["| A1111 | Easel | Notes |", "| --- | --- | --- |"]
    rows += [f"| {a1111} | {easel} | {note} |" for a1111, easel, note in PORTING_TABLE]
    return "\n".join(rows)


def render() -> str:
    parts = [BEGIN, "", "### Porting from A1111", "", render_porting_table(), ""]
    for name in hook_names():
        fn = getattr(hookspecs, name)
        signature = str(inspect.signature(fn)).replace("'", "")
        parts += [f"### `{name}{signature}`", "", inspect.getdoc(fn) or "", ""]
    for cls in (types.GenerationContext, types.StepState, types.GenerationResult):
        parts += [f"### `{cls.__name__}`", "", inspect.getdoc(cls) or "", ""]
    parts.append(END)
    return "\n".join(parts)


def update(path: str = "docs/extensions.md") -> None:
    """Replace the generated section of ``path`` in place."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    with open(path, "w", encoding="utf-8") as f:
        f.write(head + render() + tail)


if __name__ == "__main__":
    update()
