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
    GenerationContext,
    GenerationRequest,
    GenerationResult,
    InterrogatorSpec,
    PreprocessorSpec,
    PromptTransform,
    SamplerSpec,
    SamplingNoise,
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
# 1.9: plugin_api.model_folders' "VAE-approx" kind (tiny preview decoders: TAESD...)
API_VERSION = "1.9"

__all__ = [
    "API_VERSION",
    "PROJECT_NAME",
    "DenoiserCall",
    "ExtraNetworkCard",
    "ExtraNetworkParams",
    "ExtraNetworkSpec",
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
    "SettingSpec",
    "StepState",
    "Tab",
    "UpscalerSpec",
    "hookimpl",
    "hookspec",
]
