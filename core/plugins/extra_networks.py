"""Extra networks per request, as A1111's ``modules/extra_networks.py`` runs them: tags out
of the prompt, ``activate`` for every registered network, ``deactivate`` at the end.

The contract extensions see is in ``plugin_api.extra_networks``; this is the host's side.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from core.errors import RequestError
from core.plugins.registries import Registry
from plugin_api.errors import InvalidRequest
from plugin_api.extra_networks import ExtraNetworkParams, ExtraNetworkSpec
from plugin_api.types import GenerationContext, GenerationRequest, PromptTransform

log = logging.getLogger("easel.extra_networks")

# A1111's re_extra_net (``<(\w+):([^>]+)>``), without '<' in the arguments so that
# "a <b <lora:x>" takes only the real tag
TAG_RE = re.compile(r"<(\w+):([^<>]+)>")
# where ctx.state keeps the tags taken so far: {network name: [ExtraNetworkParams]}
STATE_KEY = "easel.extra_networks"
HOST_NAME = "easel"  # the prompt-transform record of tags no extension registered


def tidy(prompt: str) -> str:
    """Collapse what removed tags leave behind: ``"a cat, , blue"`` -> ``"a cat, blue"``
    (the LoRA extension's tidying, which its tests pin down)."""
    text = re.sub(r"[ \t]+", " ", prompt)
    text = re.sub(r"\s*,(\s*,)+", ",", text)
    text = re.sub(r" +,", ",", text)
    return text.strip().strip(",").strip()


def split_tags(prompt: str) -> tuple[str, list[tuple[str, ExtraNetworkParams]]]:
    """The prompt without its tags and the tags in prompt order as (name, params); the
    prompt is returned unchanged when it has no tag."""
    found: list[tuple[str, ExtraNetworkParams]] = []

    def take(match: re.Match[str]) -> str:
        found.append(
            (match.group(1), ExtraNetworkParams(items=match.group(2).split(":"), tag=match.group(0)))
        )
        return ""

    stripped = TAG_RE.sub(take, prompt)
    return (tidy(stripped), found) if found else (prompt, found)


class ExtraNetworks:
    """The registered networks and their per-request calls (isolated like hooks)."""

    def __init__(self, registry: Registry[ExtraNetworkSpec] | None) -> None:
        self.registry = registry if registry is not None else Registry("extra network", ExtraNetworkSpec)

    def take_tags(self, request: GenerationRequest, ctx: GenerationContext) -> None:
        """Move the positive prompt's tags into ``ctx.state`` and record the change as the
        prompt transform of the extension(s) owning them."""
        prompt, found = split_tags(request.prompt)
        if not found:
            return
        self._take(found, ctx, request.prompt, prompt, request.negative_prompt)
        request.prompt = prompt

    def take_image_tags(self, ctx: GenerationContext) -> None:
        """After the ``transform_prompt`` chain: the tags a hook wrote into the images'
        prompts (a wildcard choosing a LoRA). Every image's prompt loses its tags; the
        networks get the first image's, as A1111's ``parse_prompts`` uses the first
        prompt's extra-network data for the whole batch."""
        ctx.request.prompt = split_tags(ctx.request.prompt)[0]
        first: list[str] | None = None
        for index, prompt in enumerate(ctx.prompts):
            stripped, found = split_tags(prompt)
            tags = [params.tag for _, params in found]
            if first is None:
                first = tags
                if found:
                    self._take(found, ctx, prompt, stripped, ctx.negative_prompts[index])
            elif tags != first:
                ctx.warnings.append(
                    f"image {index + 1} has other extra-network tags ({', '.join(tags) or 'none'}) than the "
                    f"first image ({', '.join(first) or 'none'}): the first image's apply to the whole "
                    "request, as in A1111"
                )
            ctx.prompts[index] = stripped

    def _take(
        self,
        found: list[tuple[str, ExtraNetworkParams]],
        ctx: GenerationContext,
        prompt_before: str,
        prompt_after: str,
        negative: str,
    ) -> None:
        taken: dict[str, list[ExtraNetworkParams]] = ctx.state.setdefault(STATE_KEY, {})
        owners: list[str] = []
        for name, params in found:
            spec = self.registry.get(name)
            if spec is None:
                known = ", ".join(sorted(self.registry.names())) or "none"
                ctx.warnings.append(
                    f"extra network {name!r} is not known (known: {known}): {params.tag} was removed "
                    "from the prompt, as A1111 removes it"
                )
                owner = HOST_NAME
            else:
                taken.setdefault(spec.name, []).append(params)
                owner = self.registry.owner(spec.name) or HOST_NAME
            if owner not in owners:
                owners.append(owner)
        ctx.prompt_transforms.append(
            PromptTransform(
                extension="+".join(owners),
                prompt_before=prompt_before,
                prompt_after=prompt_after,
                negative_before=negative,
                negative_after=negative,
            )
        )

    def activate(self, ctx: GenerationContext) -> None:
        """``activate(ctx, params_list)`` of every network, in registration order.
        ``InvalidRequest`` refuses the request (RequestError naming the field)."""
        taken: dict[str, list[ExtraNetworkParams]] = ctx.state.get(STATE_KEY, {})
        for spec in list(self.registry):
            self._call(spec, "activate", spec.activate, ctx, list(taken.get(spec.name, [])))

    def deactivate(self, ctx: GenerationContext) -> None:
        for spec in list(self.registry):
            if spec.deactivate is not None:
                self._call(spec, "deactivate", spec.deactivate, ctx)

    def _call(self, spec: ExtraNetworkSpec, what: str, fn: Callable[..., Any], *args: Any) -> None:
        owner = self.registry.owner(spec.name) or "?"
        try:
            fn(*args)
        except InvalidRequest as exc:
            if what != "activate":
                log.exception("extension %r: %s of extra network %r refused too late", owner, what, spec.name)
                return
            raise RequestError(exc.field, exc.message) from exc
        except Exception as exc:  # an extension's bug must not take the request down
            log.exception("extension %r failed in %s of extra network %r", owner, what, spec.name)
            ctx = args[0]
            ctx.warnings.append(
                f"extension {owner!r} failed in {what} of extra network {spec.name!r}: {type(exc).__name__}: {exc}"
            )
