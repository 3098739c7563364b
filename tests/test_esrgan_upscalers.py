"""The ESRGAN extension: model files through spandrel, tiling, alpha, errors, the
registry, post-sample upscaling and the Extras tab."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from extensions.esrgan.loading import UpscalerFileError, find_upscaler_files, load_upscaler, unusable_reason
from extensions.esrgan.tiling import run_tiled, tile_starts
from extensions.esrgan.upscaling import UpscalerInputError, upscale_with
from tests.esrgan_files import write_compact, write_corrupt, write_unknown_architecture

ROOT = Path(__file__).resolve().parents[1]
DEMO_UPSCALER = ROOT / "models" / "ESRGAN" / "easel-demo-2x.safetensors"


def gradient(width: int, height: int) -> Image.Image:
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x / (width - 1), y / (height - 1), (x + y) / (width + height - 2)], -1)
    return Image.fromarray((rgb * 255).round().astype(np.uint8))


@pytest.fixture(scope="module")
def upscaler_models(tmp_path_factory):
    """A models folder with one good neural upscaler per A1111 folder kind and two bad ones."""
    root = tmp_path_factory.mktemp("esrgan-models")
    write_compact(root / "RealESRGAN" / "tiny-compact-2x.safetensors")
    write_unknown_architecture(root / "ESRGAN" / "mystery-4x.safetensors")
    write_corrupt(root / "ESRGAN" / "broken-2x.safetensors")
    (root / "ESRGAN" / "pickled-4x.pth").write_bytes(b"\x80\x04not really a pickle")
    return root


@pytest.fixture(scope="module")
def esrgan_host(make_host, upscaler_models):
    return make_host(models_dir=upscaler_models)


def test_demo_upscaler_is_an_original_layout_esrgan_file_spandrel_detects():
    assert DEMO_UPSCALER.stat().st_size < 5 * 1024 * 1024
    loaded = load_upscaler(DEMO_UPSCALER, allow_pickle=False)
    assert (loaded.architecture, loaded.scale) == ("ESRGAN", 2)
    keys = loaded.model.model.state_dict().keys()
    assert "model.0.weight" in keys and "model.1.sub.0.RDB1.conv1.0.weight" in keys


def test_usable_files_are_registered_and_spandrel_detects_the_good_ones(esrgan_host, upscaler_models):
    names = set(esrgan_host.upscalers.names())
    assert {"Lanczos", "Nearest", "tiny-compact-2x", "mystery-4x"} <= names
    # a damaged file and a pickle (without --allow-pickle) are not offered (issue #23,
    # point 12: /sdapi/v1/upscalers listed them as usable); GET /esrgan/upscalers says why
    assert not {"broken-2x", "pickled-4x"} & names
    assert "damaged safetensors file" in unusable_reason(
        upscaler_models / "ESRGAN" / "broken-2x.safetensors", False
    )
    assert "--allow-pickle" in unusable_reason(upscaler_models / "ESRGAN" / "pickled-4x.pth", False)
    assert unusable_reason(upscaler_models / "RealESRGAN" / "tiny-compact-2x.safetensors", False) is None
    assert "easel-demo-2x" in names  # the shipped demo upscaler is always there
    assert esrgan_host.upscalers.get("tiny-compact-2x").scale == 2
    result = esrgan_host.upscalers.get("tiny-compact-2x").upscale(gradient(24, 16), 2)
    assert result.size == (48, 32) and result.mode == "RGB"
    # a scale the network does not have: run it, then resize exactly (A1111's rule)
    assert esrgan_host.upscalers.get("tiny-compact-2x").upscale(gradient(24, 16), 3).size == (72, 48)
    assert esrgan_host.upscalers.get("tiny-compact-2x").upscale(gradient(24, 16), 0.5).size == (12, 8)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mystery-4x", "unknown upscaler architecture"),  # known only once loaded
    ],
)
def test_bad_files_give_clear_errors_naming_the_file(esrgan_host, name, expected):
    spec = esrgan_host.upscalers.get(name)
    with pytest.raises(UpscalerFileError) as caught:
        spec.upscale(gradient(16, 16), 2)
    assert expected in str(caught.value) and f"{name}." in str(caught.value)
    # the host goes on working
    assert esrgan_host.upscalers.get("tiny-compact-2x").upscale(gradient(16, 16), 2).size == (32, 32)


def test_non_image_input_is_refused_by_field(esrgan_host):
    spec = esrgan_host.upscalers.get("tiny-compact-2x")
    for bad in (b"\x89PNG not decoded", np.zeros((8, 8, 3)), "picture.png"):
        with pytest.raises(UpscalerInputError) as caught:
            spec.upscale(bad, 2)
        assert caught.value.field == "image"
    with pytest.raises(UpscalerInputError) as caught:
        spec.upscale(gradient(8, 8), float("nan"))
    assert caught.value.field == "scale"


def test_pickle_files_load_only_with_the_opt_in(tmp_path):
    import torch
    from spandrel.architectures.Compact import Compact

    path = tmp_path / "ESRGAN" / "real-pickle-2x.pth"
    path.parent.mkdir()
    torch.save(Compact(num_feat=4, num_conv=1, upscale=2).state_dict(), path)
    with pytest.raises(UpscalerFileError, match="allow-pickle"):
        load_upscaler(path, allow_pickle=False)
    assert load_upscaler(path, allow_pickle=True).scale == 2
    assert [f.name for f in find_upscaler_files([tmp_path])] == ["real-pickle-2x"]


def test_alpha_channel_is_preserved(esrgan_host):
    rgba = gradient(20, 12).convert("RGBA")
    alpha = np.zeros((12, 20), dtype=np.uint8)
    alpha[:, 10:] = 255
    rgba.putalpha(Image.fromarray(alpha))
    result = esrgan_host.upscalers.get("tiny-compact-2x").upscale(rgba, 2)
    assert result.mode == "RGBA" and result.size == (40, 24)
    out_alpha = np.asarray(result.getchannel("A"))
    assert out_alpha[:, :16].max() < 20 and out_alpha[:, 24:].min() > 235


def test_tile_weights_sum_to_one_so_an_exact_network_is_tiled_exactly():
    """With a network that is exact at tile borders (pixel repetition), any tiling gives
    the untiled result: the blend weights are a partition of unity."""
    rng = np.random.default_rng(0)
    image = rng.random((53, 71, 3), dtype=np.float32)

    def repeat(tile: np.ndarray) -> np.ndarray:
        return tile.repeat(2, axis=0).repeat(2, axis=1)

    whole = run_tiled(repeat, image, 2, tile=512)
    for tile, overlap in ((16, 4), (24, 8), (40, 0), (32, 15)):
        assert np.array_equal(run_tiled(repeat, image, 2, tile=tile, overlap=overlap), whole), (tile, overlap)
    assert tile_starts(100, 40, 8) == [0, 30, 60] and tile_starts(30, 40, 8) == [0]


def test_tiled_and_untiled_agree_and_no_seam_on_a_gradient():
    """2x2 tiles of 64 with an overlap of 16: outside the overlaps every pixel comes from
    one tile whose borders are >= 32 input pixels away, beyond the network's reach (its
    receptive field spans about 19 input pixels each way), so it equals the untiled one."""
    loaded = load_upscaler(DEMO_UPSCALER, allow_pickle=False)
    image = gradient(96, 80)
    tile, overlap = 64, 16
    whole = np.asarray(upscale_with(loaded, image, 2, tile=512), dtype=np.int16)
    tiled = np.asarray(upscale_with(loaded, image, 2, tile=tile, overlap=overlap), dtype=np.int16)
    diff = np.abs(whole - tiled).max(axis=-1)
    seams = np.zeros_like(diff, dtype=bool)
    for starts, axis in ((tile_starts(80, tile, overlap), 0), (tile_starts(96, tile, overlap), 1)):
        assert len(starts) == 2
        lo, hi = starts[1] * 2, (starts[0] + tile) * 2  # the overlap, in output pixels
        if axis == 0:
            seams[lo:hi, :] = True
        else:
            seams[:, lo:hi] = True
    assert diff[~seams].max() <= 1
    # at the seams: no visible step (at most 2 of 255 anywhere, on average far less)
    assert diff.max() <= 2 and diff[seams].mean() < 0.5
    # a seam would show as a step between neighbouring pixels that the untiled result lacks
    steps_tiled = np.abs(np.diff(tiled.astype(int), axis=1))
    steps_whole = np.abs(np.diff(whole.astype(int), axis=1))
    assert (steps_tiled - steps_whole).max() <= 2


def test_a_4000_pixel_image_upscales_in_bounded_memory(upscaler_models):
    """Run in a fresh process so its peak RSS is the upscale's own."""
    script = textwrap.dedent(
        f"""
        import json, resource, sys, time
        import numpy as np, torch
        from PIL import Image
        torch.set_num_threads(1)
        from extensions.esrgan.loading import load_upscaler
        from extensions.esrgan.upscaling import upscale_with
        loaded = load_upscaler({str(upscaler_models / "RealESRGAN" / "tiny-compact-2x.safetensors")!r}, False)
        image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (4000, 4000, 3), dtype=np.uint8))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        result = upscale_with(loaded, image, 2, tile=512)
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({{"size": result.size, "before_mb": before / 1024, "peak_mb": peak / 1024,
                           "seconds": seconds}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    print("4000x4000 -> 8000x8000:", report)
    assert report["size"] == [8000, 8000]
    # the result alone is 192 MB (uint8); a float32 canvas of it would be 768 MB more
    assert report["peak_mb"] - report["before_mb"] < 700


def test_tile_size_follows_free_memory_and_progress_is_reported(esrgan_host):
    from extensions.esrgan.tiling import choose_tile_size

    sizes = [choose_tile_size(free, scale=4, half=False) for free in (2**28, 2**31, 2**34)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    assert choose_tile_size(2**30, scale=4, half=True) >= choose_tile_size(2**30, scale=4, half=False)
    seen = []
    spec = esrgan_host.upscalers.get("tiny-compact-2x")
    spec.upscale(
        gradient(40, 24), 2, tile=16, overlap=4, progress=lambda done, total: seen.append((done, total))
    )
    assert seen == [(i, 6) for i in range(1, 7)]  # 3 x 2 tiles, each reported
