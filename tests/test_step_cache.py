"""Step caching (core/sampling/step_cache.py): each method makes fewer real denoiser
computations, stays within a stated quality bound of the uncached image, is recorded in
the infotext and read back, and leaves nothing behind for the next job.

Calls are counted here by the test itself, with a forward pre-hook on the first layer of
the deepest block (a UNet's mid block, a transformer's last block): a cached step calls
the block's replaced forward, never its layers. Quality bounds (PSNR vs the uncached
image, same seed), measured when written: demo model deepcache 3: 37.3 dB; tiny Z-Image
(random weights, so harder to predict than a trained model) taylorseer 3: 42 dB,
magcache 0.2: 40 dB; fbcache 1.0: see the test.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import RequestError
from core.sampling.step_cache import CachePlan, parse_cache
from plugin_api.types import GenerationRequest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DEMO_PROMPT = "a red circle on a blue background, top left"


def psnr(a, b) -> float:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    mse = float(((x - y) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


class LayerCalls:
    """Counts how often the first layer with weights inside ``block`` really runs."""

    def __init__(self, block: torch.nn.Module) -> None:
        layer = next(m for m in block.modules() if not list(m.children()) and list(m.parameters()))
        self.count = 0
        self.handle = layer.register_forward_pre_hook(self._hit)

    def _hit(self, *_) -> None:
        self.count += 1

    def __enter__(self) -> LayerCalls:
        return self

    def __exit__(self, *_) -> None:
        self.handle.remove()


def no_cache_hooks(module: torch.nn.Module) -> bool:
    """Nothing of a cache left on the denoiser: no diffusers hooks, no replaced forwards."""
    for sub in module.modules():
        registry = getattr(sub, "_diffusers_hook", None)
        if registry is not None and registry.hooks:
            return False
        if "forward" in vars(sub):
            return False
    return True


# --- the request field -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("off", None),
        ({"method": "off"}, None),
        ("deepcache", CachePlan("deepcache", 3.0)),
        ("deepcache:4", CachePlan("deepcache", 4.0)),
        ("deepcache 4", CachePlan("deepcache", 4.0)),  # the infotext's form
        ({"method": "fbcache", "threshold": 0.1}, CachePlan("fbcache", 0.1)),
        ({"method": "MagCache", "threshold": None}, CachePlan("magcache", 0.06)),
    ],
)
def test_parse_cache_forms(value, expected):
    assert parse_cache(value) == expected


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("teacache", "cache.method"),
        ({"method": "deepcache", "threshold": 1}, "cache.threshold"),
        ({"method": "deepcache", "threshold": 2.5}, "cache.threshold"),
        ({"method": "fbcache", "threshold": 5}, "cache.threshold"),
        ({"method": "fbcache", "threshold": "lots"}, "cache.threshold"),
        ({"method": "fbcache", "speed": 2}, "cache.speed"),
        (42, "cache"),
    ],
)
def test_parse_cache_names_the_bad_field(value, field):
    with pytest.raises(RequestError) as info:
        parse_cache(value)
    assert info.value.field == field


def test_label_round_trips_through_the_infotext_form():
    for plan in (CachePlan("deepcache", 3.0), CachePlan("fbcache", 0.05), CachePlan("taylorseer", 4.0)):
        assert parse_cache(plan.label) == plan


# --- the demo model (SD-style UNet): DeepCache ------------------------------------------------


@pytest.mark.slow
def test_demo_deepcache_quality_calls_infotext_and_no_leak(shipped_engine):
    from core.saving.infotext import parse_infotext

    def run(cache):
        request = GenerationRequest(prompt=DEMO_PROMPT, seed=11, save_images=False, cache=cache)
        model = shipped_engine.load_model(None)
        with LayerCalls(model.components["unet"].mid_block) as calls:
            result = shipped_engine.generate(request)
        return result, calls.count

    plain, plain_calls = run(None)
    cached, cached_calls = run({"method": "deepcache", "threshold": 3})
    steps = plain.parameters["steps"]
    assert plain_calls == steps
    # full UNet on calls 0, 3, 6...: ceil(steps / 3)
    assert cached_calls == -(-steps // 3)
    assert cached.parameters["cache"] == {
        "method": "deepcache", "threshold": 3, "calls": steps, "full_calls": cached_calls,
        "saved": steps - cached_calls,
    }  # fmt: skip
    assert psnr(cached.images[0], plain.images[0]) >= 30.0
    # recorded, and a paste of the infotext asks for the same cache
    parsed = parse_infotext(cached.infotexts[0])
    assert parsed["Cache"] == "deepcache 3"
    assert parse_cache(parsed["Cache"]) == CachePlan("deepcache", 3.0)
    assert "Cache" not in parse_infotext(plain.infotexts[0])
    # nothing left behind: the next uncached job gives the uncached image, bit for bit
    unet = shipped_engine.load_model(None).components["unet"]
    assert no_cache_hooks(unet)
    again, _ = run(None)
    assert np.array_equal(np.asarray(again.images[0]), np.asarray(plain.images[0]))


@pytest.mark.slow
def test_demo_deepcache_keeps_the_judged_scene(shipped_engine):
    """The demo judge reads the same colour, background, shape and position from the
    cached image as from the uncached one (a few held-out prompts)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tools.demo_model import scenes
    from tools.demo_model.judge import judge

    same = 0
    prompts = scenes.held_out_prompts()[:3]
    for index, item in enumerate(prompts):
        images = [
            shipped_engine.generate(
                GenerationRequest(prompt=item["prompt"], seed=100 + index, save_images=False, cache=cache)
            ).images[0]
            for cache in (None, "deepcache:3")
        ]
        plain, cached = (judge(image) for image in images)
        same += (plain.color, plain.background, plain.shape, plain.position) == (
            cached.color, cached.background, cached.shape, cached.position,
        )  # fmt: skip
    assert same >= len(prompts) - 1


@pytest.mark.slow
def test_demo_deepcache_with_controlnet(shipped_engine):
    """The ControlNet still decides the layout on cached steps (its shallow residuals apply
    there; the deep ones come with the reused features)."""
    from tools.demo_model import judge, scenes

    scene = scenes.Scene("blue", (scenes.make_shape("circle", "red", "left", "large"),))
    unit = {"image": scenes.render(scene, 128), "module": "canny", "model": "easel-demo-canny", "weight": 1.0}
    for seed in (1, 2):
        images = []
        for cache in (None, "deepcache:2"):
            request = GenerationRequest(
                prompt="a red circle on the right on a blue background", seed=seed, steps=20, cfg_scale=6.0,
                model="easel-demo", save_images=False, cache=cache,
                extension_args={"controlnet": {"units": [unit]}},
            )  # fmt: skip
            result = shipped_engine.generate(request)
            assert result.warnings == []
            images.append(result.images[0])
        assert judge.judge(images[1]).position == judge.judge(images[0]).position == "left"
        assert psnr(images[1], images[0]) >= 25.0


@pytest.mark.slow
def test_demo_deepcache_with_the_demo_lora(shipped_engine):
    """The cache wraps the LoRA-patched UNet: the cached image keeps the LoRA's outline
    style and stays within the bound of the uncached LoRA image; after the request neither
    the LoRA nor the cache is left (the plain uncached image comes back bit for bit)."""
    from tools.demo_lora.analyze import analyze

    def run(prompt, cache):
        request = GenerationRequest(prompt=prompt, seed=3, steps=20, save_images=False, cache=cache)
        return shipped_engine.generate(request).images[0]

    plain = run(DEMO_PROMPT, None)
    with_lora = f"{DEMO_PROMPT} <lora:easel-outline:1>"
    lora_plain, lora_cached = run(with_lora, None), run(with_lora, "deepcache:2")
    assert psnr(lora_cached, lora_plain) >= 30.0  # 37.3 dB measured when written
    assert analyze(lora_cached).style == analyze(lora_plain).style == "outline"
    assert np.array_equal(np.asarray(run(DEMO_PROMPT, None)), np.asarray(plain))


def test_demo_refuses_transformer_methods(shipped_engine):
    with pytest.raises(RequestError) as info:
        shipped_engine.validate(GenerationRequest(prompt="x", cache="fbcache"))
    assert info.value.field == "cache" and "deepcache" in str(info.value)


# --- tiny SD1.5 and Z-Image ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_engine(tmp_path_factory, tiny_sd15_dir, tiny_sdxl_dir, tiny_zimage_dir):
    from core.config import Settings
    from core.engine import Engine
    from core.host import Host

    root = tmp_path_factory.mktemp("cache-models")
    checkpoints = root / "Stable-diffusion"
    checkpoints.mkdir()
    for target in (tiny_sd15_dir, tiny_sdxl_dir, tiny_zimage_dir):
        (checkpoints / target.name).symlink_to(target.resolve(), target_is_directory=True)
    settings = Settings(
        models_dir=root, data_dir=tmp_path_factory.mktemp("data"), safe_mode=True, device="cpu"
    )
    host = Host(settings).start()
    yield Engine(host)
    host.stop()


def test_tiny_sd15_deepcache_with_hires_fix(tiny_engine):
    base = dict(
        prompt="a cat", model="tiny-sd15", seed=5, steps=12, width=64, height=64, save_images=False,
        enable_hr=True, hr_scale=1.5, denoising_strength=0.6,
    )  # fmt: skip
    plain = tiny_engine.generate(GenerationRequest(**base))
    cached = tiny_engine.generate(GenerationRequest(**base, cache="deepcache:2"))
    stats = cached.parameters["cache"]
    # both passes cached, each starting with a full call (the hires pass has new shapes);
    # with hr_second_pass_steps 0 the hires pass runs `steps` steps, as A1111's
    hires_calls = 12
    assert stats["calls"] == 12 + hires_calls
    assert stats["full_calls"] == 6 + -(-hires_calls // 2)
    assert cached.images[0].size == plain.images[0].size == (96, 96)
    assert psnr(cached.images[0], plain.images[0]) >= 25.0


def test_tiny_sdxl_deepcache(tiny_engine):
    request = dict(prompt="a cat", negative_prompt="blurry", model="tiny-sdxl", seed=2, steps=10,
                   width=64, height=64, save_images=False)  # fmt: skip
    unet = tiny_engine.load_model("tiny-sdxl").components["unet"]
    with LayerCalls(unet.mid_block) as calls:
        cached = tiny_engine.generate(GenerationRequest(**request, cache="deepcache:3"))
    assert calls.count == cached.parameters["cache"]["full_calls"] == 4  # calls 0, 3, 6, 9
    plain = tiny_engine.generate(GenerationRequest(**request))
    assert psnr(cached.images[0], plain.images[0]) >= 25.0
    assert no_cache_hooks(unet)


@pytest.mark.parametrize(
    ("cache", "min_psnr"),
    [
        # random weights: the first block's residual changes by 60-100% per step, so only a
        # tolerance of 1.0 skips anything here (a trained model skips at 0.05-0.2)
        ({"method": "fbcache", "threshold": 1.0}, 20.0),
        ({"method": "taylorseer", "threshold": 3}, 30.0),
        ({"method": "magcache", "threshold": 0.2}, 30.0),
    ],
)
def test_tiny_zimage_transformer_caches(tiny_engine, cache, min_psnr):
    request = dict(
        prompt="a cat", model="tiny-zimage", seed=3, steps=16, width=64, height=64, save_images=False
    )
    transformer = tiny_engine.load_model("tiny-zimage").components["transformer"]
    with LayerCalls(transformer.layers[-1]) as calls:
        plain = tiny_engine.generate(GenerationRequest(**request))
    assert calls.count == 16
    if cache["method"] == "magcache":
        # the first magcache run of a schedule measures the model's ratios and skips nothing
        first = tiny_engine.generate(GenerationRequest(**request, cache=cache))
        assert first.parameters["cache"]["saved"] == 0
        assert any("magnitude ratios" in w for w in first.warnings)
        assert np.array_equal(np.asarray(first.images[0]), np.asarray(plain.images[0]))
    with LayerCalls(transformer.layers[-1]) as calls:
        cached = tiny_engine.generate(GenerationRequest(**request, cache=cache))
    stats = cached.parameters["cache"]
    assert stats["calls"] == 16
    assert calls.count == stats["full_calls"] < 16
    assert psnr(cached.images[0], plain.images[0]) >= min_psnr
    assert no_cache_hooks(transformer)
    again = tiny_engine.generate(GenerationRequest(**request))
    assert np.array_equal(np.asarray(again.images[0]), np.asarray(plain.images[0]))


def test_tiny_zimage_refuses_deepcache(tiny_engine):
    with pytest.raises(RequestError) as info:
        tiny_engine.validate(GenerationRequest(prompt="x", model="tiny-zimage", cache="deepcache"))
    assert info.value.field == "cache" and "transformer" in str(info.value)


def test_an_interrupted_cached_job_leaves_no_hooks(tiny_engine):
    from core.results import CancelToken

    cancel = CancelToken()

    def stop(event) -> None:
        if event.step == 3:
            cancel.interrupt()

    result = tiny_engine.generate(
        GenerationRequest(prompt="x", model="tiny-sd15", steps=8, width=64, height=64, save_images=False,
                          cache="deepcache:2"),
        on_progress=stop, cancel=cancel,
    )  # fmt: skip
    assert result.interrupted
    assert no_cache_hooks(tiny_engine.load_model("tiny-sd15").components["unet"])


def test_cli_cache_option_becomes_the_api_field():
    from core.api.native import generation_request_from_job
    from core.api.schemas import JobRequest
    from core.cli.generate import request_fields
    from core.cli.main import build_parser

    def fields(*extra: str) -> dict:
        return request_fields(build_parser().parse_args(["generate", "a cat", *extra]))

    assert "cache" not in fields()
    asked = fields("--cache", "deepcache:2")
    assert asked["cache"] == {"method": "deepcache", "threshold": 2.0}
    # the same request either way: through a server (JobRequest) or in-process
    request = generation_request_from_job(JobRequest(**asked))
    assert parse_cache(request.cache) == CachePlan("deepcache", 2.0)
    assert parse_cache(
        generation_request_from_job(JobRequest(**fields("--cache", "fbcache"))).cache
    ) == CachePlan("fbcache", 0.05)
