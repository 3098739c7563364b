"""An interrupted generation returns the image as far as it got, as A1111 does: its
sampler keeps ``last_latent`` (the denoised estimate of the last step that ran) and
``process_images`` decodes and saves it. Checked against that estimate, recorded by a
real ``on_step`` hook and decoded with the model's own VAE.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from core.config import BUNDLED_EXTENSION_NAMES
from core.engine import Engine
from core.results import CancelToken
from core.sampling import vae_precision
from core.sampling.img2img import tensor_to_pil
from core.saving import read_infotext
from plugin_api import GenerationRequest

RECORDER = textwrap.dedent(
    """
    from plugin_api import hookimpl

    ESTIMATES = []

    @hookimpl
    def on_step(ctx, step):
        ESTIMATES.append((step.step, step.denoised.detach().clone()))
    """
)


@pytest.fixture(scope="module")
def recorder(make_host, tmp_path_factory):
    folder = tmp_path_factory.mktemp("interrupt-extensions")
    (folder / "estimates.py").write_text(RECORDER)
    host = make_host(
        extension_dirs=[folder], safe_mode=False, disabled_extensions=set(BUNDLED_EXTENSION_NAMES)
    )
    return Engine(host), host.extensions.records["estimates"].module


def _request(**overrides) -> GenerationRequest:
    values = dict(
        prompt="a red circle", negative_prompt="", seed=21, steps=6, width=64, height=64,
        model="tiny-sd15", sampler="Euler", save_images=False,
    )  # fmt: skip
    values.update(overrides)
    return GenerationRequest(**values)


def _interrupt_after(step: int, token: CancelToken):
    def on_progress(event):
        if event.step == step:
            token.interrupt()

    return on_progress


def test_interrupt_returns_the_last_denoised_estimate_decoded(recorder):
    engine, module = recorder
    module.ESTIMATES.clear()
    token = CancelToken()
    result = engine.generate(_request(batch_count=2), on_progress=_interrupt_after(3, token), cancel=token)
    assert result.interrupted
    assert [step for step, _ in module.ESTIMATES] == [0, 1, 2]  # stopped within one step
    assert result.seeds == [21] and len(result.images) == 1  # the second batch never ran
    model = engine.models.get("tiny-sd15")
    reference = tensor_to_pil(
        vae_precision.decode(model.adapter, model.components, module.ESTIMATES[-1][1], [])
    )
    assert np.array_equal(np.asarray(result.images[0]), np.asarray(reference[0]))
    # not the finished image: the same request run to the end differs
    full = engine.generate(_request())
    assert not np.array_equal(np.asarray(result.images[0]), np.asarray(full.images[0]))


def test_the_partial_image_is_saved_with_its_infotext(recorder, tmp_path):
    engine, _ = recorder
    token = CancelToken()
    result = engine.generate(_request(save_images=True), on_progress=_interrupt_after(2, token), cancel=token)
    assert result.interrupted and len(result.paths) == 1
    assert "Seed: 21" in read_infotext(result.paths[0]) and result.infotexts[0] == read_infotext(
        result.paths[0]
    )


def test_an_interrupt_before_the_first_step_returns_nothing(recorder):
    engine, _ = recorder
    token = CancelToken()
    token.interrupt()
    result = engine.generate(_request(), cancel=token)
    assert result.interrupted and result.images == [] and result.paths == []
