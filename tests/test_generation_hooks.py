"""The per-generation hooks, through real extension files loaded by the production loader.

(The [Host] issue's acceptance tests: they need the engine.)
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from core.config import BUNDLED_EXTENSION_NAMES
from core.engine import Engine
from core.results import CancelToken
from core.saving import parse_infotext, read_infotext
from plugin_api import GenerationRequest

RECORDER = """
from plugin_api import hookimpl

CALLS = []

@hookimpl
def transform_prompt(request, ctx):
    CALLS.append(("transform_prompt", request.prompt, ctx.family))

@hookimpl
def model_loaded(ctx, model):
    CALLS.append(("model_loaded", model.name, sorted(model.components)))

@hookimpl
def before_sample(ctx):
    CALLS.append(("before_sample", list(ctx.seeds), ctx.total_steps, ctx.model.name))

@hookimpl
def denoiser_kwargs(ctx, step):
    inputs = ctx.state["easel.denoiser_inputs"]
    CALLS.append(("denoiser_kwargs", step.step, tuple(step.latents.shape),
                  tuple(inputs["encoder_hidden_states"].shape), inputs["cfg_batch"]))
    return None

@hookimpl
def on_step(ctx, step):
    CALLS.append(("on_step", step.step, step.total_steps, step.preview is not None))

@hookimpl
def after_sample(ctx, images):
    CALLS.append(("after_sample", len(images)))
    from PIL import ImageOps
    return [ImageOps.mirror(image) for image in images]

@hookimpl
def image_saved(ctx, path):
    CALLS.append(("image_saved", path))
"""

EXTENSIONS = {
    "a_broken_import.py": "raise RuntimeError('cannot import me')\n",
    "b_broken_transform.py": textwrap.dedent(
        """
        from plugin_api import hookimpl

        @hookimpl
        def transform_prompt(request, ctx):
            request.prompt = "half-done edit"
            raise ValueError("transform exploded")
        """
    ),
    "c_rewriter.py": textwrap.dedent(
        """
        from plugin_api import hookimpl

        @hookimpl
        def transform_prompt(request, ctx):
            request.prompt = request.prompt.replace("kitty", "green square")
            ctx.extra_params["Rewriter"] = "on"
        """
    ),
    "d_broken_step.py": textwrap.dedent(
        """
        from plugin_api import hookimpl

        @hookimpl
        def on_step(ctx, step):
            raise ZeroDivisionError("step exploded")
        """
    ),
    "e_recorder.py": RECORDER,
}


@pytest.fixture(scope="module")
def hooked(make_host, tmp_path_factory):
    folder = tmp_path_factory.mktemp("extensions")
    for name, source in EXTENSIONS.items():
        (folder / name).write_text(source)
    # safe mode would skip extension folders; the bundled extensions stay off so that
    # only the test's extensions touch the prompt
    host = make_host(
        extension_dirs=[folder], safe_mode=False, disabled_extensions=set(BUNDLED_EXTENSION_NAMES)
    )
    engine = Engine(host)
    request = GenerationRequest(
        prompt="a kitty", negative_prompt="", seed=5, steps=2, width=64, height=64, model="tiny-sd15"
    )
    result = engine.generate(request)
    recorder = host.extensions.records["e_recorder"].module
    return host, engine, result, list(recorder.CALLS)


def test_transformed_prompt_reaches_the_encoder(hooked, engine):
    _, _, result, _ = hooked
    assert result.prompt == "a green square" and result.original_prompt == "a kitty"
    params = parse_infotext(read_infotext(result.paths[0]))
    # the prompt line is what the user wrote (A1111: pasting it remakes the image); what
    # the model saw has its own field
    assert params["Prompt"] == "a kitty"
    assert params["Transformed prompt"] == "a green square"
    assert "Original prompt" not in params
    assert params["Rewriter"] == "on"
    assert params["Prompt transforms"] == "c_rewriter"
    # the image is the transformed prompt's image (mirrored by the recorder's after_sample)
    direct = engine.generate(
        GenerationRequest(
            prompt="a green square",
            seed=5,
            steps=2,
            width=64,
            height=64,
            model="tiny-sd15",
            save_images=False,
        )
    )
    from PIL import ImageOps

    assert np.array_equal(np.asarray(result.images[0]), np.asarray(ImageOps.mirror(direct.images[0])))
    original = engine.generate(
        GenerationRequest(
            prompt="a kitty", seed=5, steps=2, width=64, height=64, model="tiny-sd15", save_images=False
        )
    )
    assert not np.array_equal(np.asarray(direct.images[0]), np.asarray(original.images[0]))


def test_saved_file_is_the_after_sample_result(hooked):
    _, _, result, _ = hooked
    from PIL import Image

    with Image.open(result.paths[0]) as saved:
        assert np.array_equal(np.asarray(saved.convert("RGB")), np.asarray(result.images[0]))


def test_hooks_run_in_documented_order(hooked):
    _, _, result, calls = hooked
    names = [c[0] for c in calls]
    assert names == [
        "transform_prompt",
        "model_loaded",
        "before_sample",
        "denoiser_kwargs",
        "on_step",
        "denoiser_kwargs",
        "on_step",
        "after_sample",
        "image_saved",
    ]
    assert calls[0][1] == "a green square" and calls[0][2] == "sd15"  # after the rewriter (load order)
    assert "unet" in calls[1][2] and "scheduler" in calls[1][2]
    assert calls[2][1] == [5] and calls[2][3] == "tiny-sd15"
    assert calls[3][2][0] == 2  # the CFG batch: uncond + cond
    assert calls[3][3] == (2, 77, 32) and calls[3][4] is True  # the text conditioning, same batch
    assert calls[4] == ("on_step", 0, 2, True)
    assert calls[-1][1] == result.paths[0]


def test_failing_extensions_are_named_and_isolated(hooked):
    host, _, result, _ = hooked
    records = host.extensions.records
    assert records["a_broken_import"].state == "failed"
    assert "cannot import me" in records["a_broken_import"].error
    transform_failures = [f for f in records["b_broken_transform"].failures if f.hook == "transform_prompt"]
    assert transform_failures and "transform exploded" in transform_failures[0].error
    step_failures = [f for f in records["d_broken_step"].failures if f.hook == "on_step"]
    assert len(step_failures) == 1  # disabled for the rest of the generation after one failure
    assert any("d_broken_step" in w for w in result.warnings)
    assert result.images and result.paths  # generation still worked


def test_model_loaded_not_called_for_cached_model(hooked):
    host, engine, _, _ = hooked
    recorder = host.extensions.records["e_recorder"].module
    before = len(recorder.CALLS)
    engine.generate(
        GenerationRequest(
            prompt="again", seed=1, steps=1, width=64, height=64, model="tiny-sd15", save_images=False
        )
    )
    new = [c[0] for c in recorder.CALLS[before:]]
    assert "model_loaded" not in new and "before_sample" in new


def test_progress_events_previews_and_interrupt(engine):
    events = []
    token = CancelToken()

    def on_progress(event):
        events.append(event)
        if event.batch_index == 0 and event.step == 2:
            token.interrupt()

    result = engine.generate(
        GenerationRequest(
            prompt="x",
            seed=1,
            steps=4,
            width=64,
            height=64,
            model="tiny-sd15",
            batch_count=2,
            save_images=False,
        ),
        on_progress=on_progress,
        cancel=token,
    )
    # the batch in progress comes back as far as it got (A1111); the second never ran
    assert result.interrupted and len(result.images) == 1 and result.seeds == [1]
    phases = [e.phase for e in events]
    # then the partial image is decoded and saved, as a finished one would be
    assert phases[:4] == ["loading", "encoding", "sampling", "sampling"], phases
    assert set(phases[4:]) <= {"decoding", "saving"}, phases
    assert events[0].eta_s < 0  # unknown before the first step
    events = [e for e in events if e.phase == "sampling"]
    assert [e.step for e in events] == [1, 2]  # stopped within one step
    assert events[0].total_steps == 4 and events[0].batch_count == 2
    assert events[0].preview is not None and events[0].preview.size == (8, 8)
    assert events[0].eta_s >= 0


def test_skip_abandons_the_current_batch_only(engine):
    token = CancelToken()

    def on_progress(event):
        if event.batch_index == 0 and event.step == 1:
            token.skip()

    result = engine.generate(
        GenerationRequest(
            prompt="x",
            seed=10,
            steps=2,
            width=64,
            height=64,
            model="tiny-sd15",
            batch_count=2,
            save_images=False,
        ),
        on_progress=on_progress,
        cancel=token,
    )
    assert not result.interrupted
    assert result.seeds == [11]


def test_preloading_calls_model_loaded_without_context(hooked):
    host, engine, _, _ = hooked
    recorder = host.extensions.records["e_recorder"].module
    before = len(recorder.CALLS)
    model = engine.load_model("tiny-sd15-file")
    assert model.name == "tiny-sd15-file"
    assert [c[:2] for c in recorder.CALLS[before:]] == [("model_loaded", "tiny-sd15-file")]
    engine.load_model("tiny-sd15-file")  # cached: no second call
    assert len(recorder.CALLS) == before + 1


RESIDUAL = """
import torch
from plugin_api import hookimpl

@hookimpl
def denoiser_kwargs(ctx, step):
    # ControlNet-style residuals for the tiny UNet at 64x64 (the UNet uses them only
    # when both the down and the mid residuals are given)
    batch = step.latents.shape[0]
    down = tuple(torch.zeros(batch, c, s, s) for c, s in ((32, 8), (32, 8), (32, 4), (64, 4)))
    return {{
        "down_block_additional_residuals": down,
        "mid_block_additional_residual": torch.full((batch, 64, 4, 4), {value}),
    }}
"""


def _generate_with(make_host, tmp_path, files):
    folder = tmp_path / "exts"
    folder.mkdir(parents=True)
    for name, source in files.items():
        (folder / name).write_text(source)
    host = make_host(
        extension_dirs=[folder], safe_mode=False, disabled_extensions=set(BUNDLED_EXTENSION_NAMES)
    )
    request = GenerationRequest(
        prompt="x", seed=8, steps=2, width=64, height=64, model="tiny-sd15", save_images=False
    )
    return np.asarray(Engine(host).generate(request).images[0])


def test_denoiser_kwargs_reach_the_unet_and_add_up(make_host, tmp_path):
    none = _generate_with(make_host, tmp_path / "a", {})
    one = _generate_with(make_host, tmp_path / "b", {"half.py": RESIDUAL.format(value=0.5)})
    two = _generate_with(
        make_host,
        tmp_path / "c",
        {"q1.py": RESIDUAL.format(value=0.25), "q2.py": RESIDUAL.format(value=0.25)},
    )
    assert not np.array_equal(none, one)
    assert np.abs(one.astype(int) - two.astype(int)).max() <= 1  # 0.25 + 0.25 == 0.5
