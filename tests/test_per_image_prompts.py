"""How request-level prompt edits and per-image prompts combine in the transform_prompt
chain (plugin_api.hookspecs.transform_prompt): an edit before the images got prompts of
their own applies to every image; one after is kept out of them, with a warning."""

from __future__ import annotations

import types

import pytest

from plugin_api import GenerationRequest, hookimpl
from plugin_api.testing import run_generation


def extension(name: str, transform, **marks) -> types.ModuleType:
    module = types.ModuleType(name)
    module.transform_prompt = hookimpl(**marks)(transform) if marks else hookimpl(transform)
    return module


@pytest.mark.slow
def test_request_edits_follow_until_images_have_their_own_prompts(tmp_path, tiny_sd15_dir):
    def translate(request, ctx):  # request-level, first: reaches every image
        request.prompt = request.prompt.replace("kitty", "cat")

    def per_image(request, ctx):
        ctx.prompts = [f"{prompt}, take {seed}" for prompt, seed in zip(ctx.prompts, ctx.seeds, strict=True)]

    def late_edit(request, ctx):  # request-level, after per-image prompts: kept out
        request.prompt = request.prompt + ", late"

    modules = [
        extension("a_translate", translate, tryfirst=True),
        extension("b_per_image", per_image),
        extension("c_late_edit", late_edit, trylast=True),
    ]
    request = GenerationRequest(prompt="a kitty", seed=5, batch_size=2, save_images=False)
    result = run_generation(modules, request, tmp_path, model_dir=tiny_sd15_dir)
    assert result.prompts == ["a cat, take 5", "a cat, take 6"]
    assert result.prompt == "a cat, late"  # the request-level prompt still has the late edit
    assert any("'c_late_edit' edited request.prompt" in w for w in result.warnings)
    # each image's infotext names its own prompt (quoted: it holds a comma, as A1111 writes it)
    from core.saving import parse_infotext

    assert [parse_infotext(text)["Transformed prompt"] for text in result.infotexts] == result.prompts


@pytest.mark.slow
def test_a_hook_that_breaks_the_per_image_lists_is_named(tmp_path, tiny_sd15_dir):
    def short(request, ctx):
        ctx.prompts = ctx.prompts[:1]

    from plugin_api import InvalidRequest

    with pytest.raises(InvalidRequest) as refused:
        run_generation(
            [extension("short", short)],
            GenerationRequest(prompt="x", batch_size=2),
            tmp_path,
            model_dir=tiny_sd15_dir,
        )
    assert refused.value.field == "prompts"


@pytest.mark.slow
@pytest.mark.parametrize("model_fixture", ["tiny_sd15_dir", "tiny_sdxl_dir"])
def test_prompts_of_different_lengths_share_a_batch(tmp_path, request, model_fixture):
    """A prompt past CLIP's 75 tokens encodes to two chunks (154 tokens), a short one to 77:
    the short rows are padded with their last token (as A1111's stack_conds), the longest
    row is left as it is, so that image equals the same prompt generated alone."""
    import numpy as np

    model_dir = request.getfixturevalue(model_fixture)
    long_prompt = " ".join(["a red circle on a blue square"] * 15)  # ~105 tokens

    def two_lengths(request, ctx):
        ctx.prompts = ["a cat", long_prompt]

    tokens = []

    @hookimpl
    def denoiser_kwargs(ctx, step):
        tokens.append(ctx.state["easel.denoiser_inputs"]["encoder_hidden_states"].shape[:2])

    module = extension("two_lengths", two_lengths)
    module.denoiser_kwargs = denoiser_kwargs
    batch = run_generation(
        [module],
        GenerationRequest(prompt="x", seed=9, batch_size=2, save_images=False),
        tmp_path / "batch",
        model_dir=model_dir,
    )
    alone = run_generation(
        [],
        GenerationRequest(prompt=long_prompt, seed=10, save_images=False),
        tmp_path / "alone",
        model_dir=model_dir,
    )
    assert tokens[0] == (4, 154)  # [uncond x2, cond x2], both rows at the long prompt's length
    got = np.asarray(batch.images[1], dtype=np.int16)
    want = np.asarray(alone.images[0], dtype=np.int16)
    assert np.abs(got - want).max() <= 2
