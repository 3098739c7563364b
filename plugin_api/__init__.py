"""Easel's public plugin API: the only package extensions import.

    from plugin_api import hookimpl

    @hookimpl
    def transform_prompt(request, ctx):
        request.prompt = request.prompt.replace("kitty", "cat")

Everything an extension may rely on is re-exported here; ``API_VERSION`` follows
semantic versioning (a minor bump adds hooks or fields, a major bump breaks them).
"""

from plugin_api.errors import InvalidRequest
from plugin_api.hookspecs import PROJECT_NAME, hookimpl, hookspec
from plugin_api.types import (
    GenerationContext,
    GenerationRequest,
    InterrogatorSpec,
    PreprocessorSpec,
    PromptTransform,
    SamplerSpec,
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
# 1.8: GenerationRequest.cache (step caching: fbcache, magcache, taylorseer, deepcache)
API_VERSION = "1.8"

__all__ = [
    "API_VERSION",
    "PROJECT_NAME",
    "GenerationContext",
    "GenerationRequest",
    "InterrogatorSpec",
    "InvalidRequest",
    "PreprocessorSpec",
    "PromptTransform",
    "SamplerSpec",
    "SettingSpec",
    "StepState",
    "Tab",
    "UpscalerSpec",
    "hookimpl",
    "hookspec",
]
