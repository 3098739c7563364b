"""A prompt blocklist with a user setting: a request whose prompt (any image's) holds a
blocked word is refused from ``transform_prompt``; a blocked model from ``before_sample``."""

from __future__ import annotations

from plugin_api import InvalidRequest, SettingSpec, hookimpl

WORDS = "blocklist.words"
MODELS = "blocklist.models"


def listed(value) -> set[str]:
    return {word.strip().casefold() for word in str(value or "").split(",") if word.strip()}


@hookimpl
def register_settings(register):
    register(SettingSpec(key=WORDS, default="", label="Blocked words (comma-separated)"))
    register(SettingSpec(key=MODELS, default="", label="Blocked models (comma-separated)"))


@hookimpl(trylast=True)  # after the wildcards: the words each image really gets are checked
def transform_prompt(request, ctx):
    blocked = listed(ctx.settings.get(WORDS))
    for index, prompt in enumerate([request.prompt, *ctx.prompts]):
        words = {word.strip(",.").casefold() for word in prompt.split()}
        hit = sorted(words & blocked)
        if hit:
            field = "prompt" if index == 0 else f"prompts.{index - 1}"
            raise InvalidRequest(field, f"contains the blocked word {hit[0]!r}")


@hookimpl
def before_sample(ctx):
    if ctx.model.name.casefold() in listed(ctx.settings.get(MODELS)):
        raise InvalidRequest("model", f"{ctx.model.name} is blocked by the blocklist.models setting")
