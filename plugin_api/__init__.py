"""Easel's public plugin API: the only package extensions import.

    from plugin_api import hookimpl

    @hookimpl
    def transform_prompt(request, ctx):
        request.prompt = request.prompt.replace("kitty", "cat")

Everything an extension may rely on is re-exported here; ``API_VERSION`` follows
semantic versioning (a minor bump adds hooks or fields, a major bump breaks them).
"""

from plugin_api.errors import InvalidRequest
from plugin_api.extra_networks import ExtraNetworkCard, ExtraNetworkParams, ExtraNetworkSpec, PromptEmbedding
from plugin_api.hookspecs import PROJECT_NAME, hookimpl, hookspec
from plugin_api.types import (
    DenoiserCall,
    FormSection,
    GenerationContext,
    GenerationRequest,
    GenerationResult,
    InterrogatorSpec,
    PreprocessorSpec,
    PromptTransform,
    SamplerSpec,
    SamplingNoise,
    ScriptContext,
    ScriptSpec,
    SettingSpec,
    StepState,
    Tab,
    UpscalerSpec,
)

# 1.2: SettingSpec.path, plugin_api.paths; 1.3: GenerationRequest.vae;
# 1.4: GenerationRequest.scheduler, .shift, .styles; SamplerSpec.options, .note;
# 1.5: plugin_api.model_folders (A1111 and ComfyUI folder names);
# 1.6: register_interrogators, InterrogatorSpec;
# 1.7: plugin_api.images (the host's one image gate: open_image, MAX_IMAGE_SIDE)
# 1.8: register_extra_networks, plugin_api.extra_networks (ExtraNetworkSpec, ExtraNetworkParams,
#      ExtraNetworkCard, PromptEmbedding, preview_beside), GenerationContext.prompt_embeddings;
#      sampling-maths hooks (patch_denoiser, prepare_noise, before_denoiser,
#      after_denoiser, after_cfg; DenoiserCall, SamplingNoise); SamplerSpec.sample;
#      seeds before transform_prompt, ctx.prompts/negative_prompts per image, ctx.settings,
#      ctx.results, ctx.dry_run, generation_finished/generation_failed, validate_request's
#      settings, ui_tabs' host, GenerationResult exported, run_generation(settings=),
#      plugin_api.testing.serve / host helpers;
#      GenerationRequest.inpainting_fill (A1111's "Masked content");
#      GenerationRequest.cache (step caching: fbcache, magcache, taylorseer, deepcache)
# 1.9: ui_form_sections, FormSection (accordions in txt2img/img2img whose values become
#      extension_args as /sdapi/v1 alwayson_scripts sends them), plugin_api.form_sections,
#      plugin_api.testing.form_section_args; Tab builds may return
#      {"send_to_image": gr.Image} (a "Send to" target for result galleries);
#      host.save_extras_image (outputs/extras-images, A1111's naming)
#      register_scripts, ScriptSpec, ScriptContext, GenerationRequest.script_name/.script_args
#      (A1111's selectable scripts: one request run as several generations in one job)
#      plugin_api.localization.translate (run-time texts in the page's language; labels are
#      translated from the extension's localizations/<lang>.json)
#      GenerationRequest.negative_prompt/clip_skip/output_format None = the user's setting
#      (default_negative_prompt, CLIP_stop_at_last_layers, samples_format);
#      SettingSpec.path_root "outputs"
#      GenerationRequest.distilled_cfg_scale (FLUX.1-dev's "Distilled CFG Scale")
#      plugin_api.model_folders' "VAE-approx" kind (tiny preview decoders: TAESD...)
#      ScriptSpec.form (a script's controls under the WebUI form's "Script" dropdown)
API_VERSION = "1.9"

__all__ = [
    "API_VERSION",
    "PROJECT_NAME",
    "DenoiserCall",
    "ExtraNetworkCard",
    "ExtraNetworkParams",
    "ExtraNetworkSpec",
    "FormSection",
    "GenerationContext",
    "GenerationRequest",
    "GenerationResult",
    "InterrogatorSpec",
    "InvalidRequest",
    "PreprocessorSpec",
    "PromptEmbedding",
    "PromptTransform",
    "SamplerSpec",
    "SamplingNoise",
    "ScriptContext",
    "ScriptSpec",
    "SettingSpec",
    "StepState",
    "Tab",
    "UpscalerSpec",
    "hookimpl",
    "hookspec",
]
