"""Live preview decoders (core/previews) and the phases a job reports (#25).

The acceptance check runs the shipped demo model: the fitted approximate preview of the
last step must show the colours the final image has (foreground and background, by the
demo judge) and be much closer to it than the family's shipped SD1.5 factors were.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from core.previews import APPROX, FULL, NONE, TINY, PreviewDecoders
from core.previews.approx import LatentColorCache, LatentColors
from core.previews.tiny_vae import find_tiny_vae, load_tiny_decoder
from plugin_api.types import GenerationRequest
from tools.demo_model import scenes
from tools.demo_model.judge import judge

PROMPTS = scenes.held_out_prompts()[::4]  # a dozen: every colour as foreground and background


def _colour_error(preview: Image.Image, final: Image.Image) -> float:
    """Mean absolute difference (0-255) of the preview and the final image averaged down to it."""
    small = np.asarray(final.convert("RGB").resize(preview.size, Image.Resampling.BOX), dtype=float)
    return float(np.abs(np.asarray(preview.convert("RGB"), dtype=float) - small).mean())


def _judged_colours(image: Image.Image, size: tuple[int, int]) -> tuple[str | None, str | None]:
    verdict = judge(image.convert("RGB").resize(size, Image.Resampling.BILINEAR))
    return verdict.color, verdict.background


@pytest.mark.slow
def test_previews_of_the_last_step_have_the_final_images_colours(shipped_engine):
    """The acceptance check of #25 on a dozen held-out prompts: the preview the demo model
    shows by default (its own trained tiny decoder, the "TAESD" method) judges as the final
    image on every prompt; the fitted "Approx cheap" map on all but one at most, both far
    closer to the final image than the SD1.5 factors the family shipped before."""
    engine = shipped_engine
    assert engine.host.get_setting("show_progress_type") == TINY  # the default
    model = engine.models.get("easel-demo")
    assert engine.previews.find_tiny(model).name == "easel-demo/vae_approx"  # its own, shipped
    last_latents: list[torch.Tensor] = []
    chosen = engine.previews.for_model

    def recording(model, method, hashes):  # the engine's own decoder, its input kept
        decode = chosen(model, method, hashes)
        return lambda latents: (last_latents.append(latents[:1].clone()), decode(latents))[1]

    engine.previews.for_model = recording
    try:
        rows = []
        for prompt in PROMPTS:
            previews = []
            result = engine.generate(
                GenerationRequest(prompt=prompt["prompt"], seed=prompt["seed"], save_images=False),
                on_progress=lambda event, seen=previews: (
                    event.preview is not None and seen.append(event.preview)
                ),
            )
            final = result.images[0]
            shown = {
                "tiny": previews[-1],  # what the WebUI showed last
                "fitted": engine.previews.approx(model, engine.models.hashes)(last_latents[-1]),
                "sd15": model.adapter.preview(last_latents[-1]),  # the family's shipped factors
            }
            expected = _judged_colours(final, final.size)
            rows.append(
                {
                    name: (_judged_colours(image, final.size) == expected, _colour_error(image, final))
                    for name, image in shown.items()
                }
            )
    finally:
        engine.previews.for_model = chosen
    same = {name: sum(row[name][0] for row in rows) for name in rows[0]}
    error = {name: float(np.mean([row[name][1] for row in rows])) for name in rows[0]}
    print(
        f"\njudged fg/bg equal to the final image (of {len(rows)}): {same}; "
        f"mean colour error (0-255): { {name: round(value, 1) for name, value in error.items()} }"
    )
    # measured: tiny 12/12, 2.5; fitted 11/12, 21.0; SD1.5 factors 0/12, 96.0 (one small
    # white circle on yellow comes out purple in the 16x16 fitted map)
    assert same["tiny"] == len(rows), rows
    assert error["tiny"] < 8, error
    assert same["fitted"] >= len(rows) - 1, rows
    assert error["fitted"] < 30 and error["fitted"] < error["sd15"] / 3, error


def test_fitted_map_is_cached_per_model_and_vae_and_a_bad_cache_is_refitted(shipped_engine, tmp_path):
    model = shipped_engine.models.get("easel-demo")
    path = tmp_path / "preview_factors.json"
    fitted = LatentColorCache(path).get("demo:own", model.adapter, model.components)
    again = LatentColorCache(path)
    assert again.get("demo:own", None, None) == fitted  # read back: no VAE needed
    path.write_text('{"demo:own": {"version": 1, "channels": 4, "degree": 9, "factors": [[1]]}}', "utf-8")
    assert LatentColorCache(path).get("demo:own", model.adapter, model.components) == fitted
    assert LatentColors.from_json({"version": 1, "factors": "x"}) is None
    # its image has one pixel per latent pixel
    assert fitted.to_rgb(torch.zeros(1, 4, 16, 12)).size == (12, 16)


@pytest.fixture
def without_own_tiny_decoder(monkeypatch):
    """The demo model ships its own tiny decoder, found before models/VAE-approx: these
    tests are about the VAE-approx files."""
    monkeypatch.setattr("core.previews.OWN_TINY_VAE_FOLDER", "no-such-folder")


def _tiny_autoencoder():
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    return AutoencoderTiny(
        encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8), latent_channels=4
    ).eval()


def _original_layout(vae) -> dict[str, torch.Tensor]:
    """taesd.py's decoder keys: diffusers' ``decoder.layers.N`` is its ``N + 1`` (index 0 is its clamp)."""
    out = {}
    for key, value in vae.decoder.state_dict().items():
        _, index, rest = key.split(".", 2)
        out[f"{int(index) + 1}.{rest}"] = value.contiguous()
    return out


def test_tiny_vae_files_in_both_layouts_decode_as_diffusers_does(tmp_path):
    from safetensors.torch import save_file

    vae = _tiny_autoencoder()
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = vae.decode(latents).sample  # diffusers' own AutoencoderTiny

    approx = tmp_path / "VAE-approx"
    approx.mkdir()
    vae.save_pretrained(approx / "taesdxl")  # a Hugging Face folder (config.json + safetensors)
    save_file(_original_layout(vae), str(approx / "taesd_decoder.safetensors"))  # ComfyUI's file
    torch.save(_original_layout(vae), approx / "taef1_decoder.pth")  # A1111's download

    for stems, name in ((("taesdxl",), "taesdxl"), (("taesd",), "taesd_decoder.safetensors")):
        found = find_tiny_vae([approx], stems, allow_pickle=False)
        assert found is not None and found.name == name
        decoded = load_tiny_decoder(found, allow_pickle=False).decode(latents)
        assert torch.allclose(decoded, reference, atol=1e-5), name

    assert find_tiny_vae([approx], ("taef1",), allow_pickle=False) is None  # a pickle, not allowed
    pickled = find_tiny_vae([approx], ("taef1",), allow_pickle=True)
    assert torch.allclose(load_tiny_decoder(pickled, allow_pickle=True).decode(latents), reference, atol=1e-5)


def test_a_broken_tiny_vae_is_named_and_the_preview_falls_back(
    shipped_engine, tmp_path, caplog, without_own_tiny_decoder
):
    from safetensors.torch import save_file

    from core.errors import ModelError

    approx = tmp_path / "VAE-approx"
    approx.mkdir()
    save_file({"conv.weight": torch.zeros(2, 2)}, str(approx / "taesd_decoder.safetensors"))
    found = find_tiny_vae([approx], ("taesd",), allow_pickle=False)
    with pytest.raises(ModelError, match=r"taesd_decoder\.safetensors"):
        load_tiny_decoder(found, allow_pickle=False)

    model = shipped_engine.models.get("easel-demo")  # an SD1.5-family model: looks for taesd
    previews = PreviewDecoders(tmp_path / "state", lambda kind: [approx], allow_pickle=False)
    preview = previews.for_model(model, TINY, shipped_engine.models.hashes)
    image = preview(torch.zeros(1, 4, 16, 16))
    assert image.size == (16, 16)  # the approximate map, one pixel per latent pixel
    assert "taesd_decoder.safetensors" in caplog.text
    assert previews.for_model(model, NONE, shipped_engine.models.hashes) is None


def test_tiny_vae_preview_is_full_size(shipped_engine, tmp_path, without_own_tiny_decoder):
    from safetensors.torch import save_file

    approx = tmp_path / "VAE-approx"
    approx.mkdir()
    save_file(_original_layout(_tiny_autoencoder()), str(approx / "taesd_decoder.safetensors"))
    model = shipped_engine.models.get("easel-demo")
    previews = PreviewDecoders(tmp_path / "state", lambda kind: [approx], allow_pickle=False)
    image = previews.for_model(model, TINY, shipped_engine.models.hashes)(torch.zeros(2, 4, 16, 16))
    assert image.size == (128, 128)
    # "Full": the model's own VAE, the same pixels as its decode of the first image
    latents = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(3))
    full = previews.for_model(model, FULL, shipped_engine.models.hashes)(latents)
    with torch.no_grad():
        decoded = model.adapter.decode(model.components, latents[:1])
    expected = ((decoded[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.array_equal(np.asarray(full), expected)


def test_phases_in_order_with_an_eta_once_known_and_the_settings(shipped_engine):
    engine = shipped_engine
    engine.host.set_setting("show_progress_type", APPROX)
    engine.host.set_setting("show_progress_every_n_steps", 2)
    try:
        events = []
        engine.generate(
            GenerationRequest(prompt="a red circle on a blue background", seed=1, steps=4, save_images=False),
            on_progress=events.append,
        )
        phases = [e.phase for e in events]
        assert phases == ["loading", "encoding", *["sampling"] * 4, "decoding", "saving"]
        assert all(e.eta_s < 0 for e in events[:2])  # unknown before a step was timed
        assert all(e.eta_s >= 0 for e in events[2:])
        elapsed = [e.elapsed_s for e in events]
        assert elapsed == sorted(elapsed)  # one clock, since the generation started
        # every 2nd step (and the first)
        assert [e.preview is not None for e in events if e.phase == "sampling"] == [True, True, False, True]
        engine.host.set_setting("show_progress_type", NONE)
        events.clear()
        engine.generate(
            GenerationRequest(prompt="a red circle", seed=1, steps=2, save_images=False),
            on_progress=events.append,
        )
        assert all(e.preview is None for e in events)
    finally:  # the defaults again (the module shares one engine)
        engine.host.set_setting("show_progress_type", TINY)
        engine.host.set_setting("show_progress_every_n_steps", 0)
    specs = engine.host.setting_specs
    assert specs.get("show_progress_type").choices == ("Approx cheap", "TAESD", "Full", "None")
    with pytest.raises(ValueError, match="show_progress_type"):
        engine.host.set_setting("show_progress_type", "../../etc")


def test_phase_text_for_a1111_clients_the_cli_and_the_webui():
    from core.cli.progress_bar import PhaseBar
    from core.jobs.live import LiveProgress
    from core.jobs.remote_events import live_from_event, progress_event
    from ui.job_client import JobSnapshot
    from ui.progress_view import render_progress

    live = LiveProgress("j", step=3, total_steps=20, batch_count=2, phase="sampling", eta_s=4.0)
    assert live.textinfo() == "Sampling step 3/20, batch 1/2"
    assert LiveProgress("j", phase="loading").textinfo() == "Loading model"
    back = live_from_event(progress_event("j", live, with_preview=False))  # a worker process's event
    assert (back.phase, back.step, back.started_at) == ("sampling", 3, round(live.started_at, 3))

    loading = JobSnapshot("j", "running", phase="loading", elapsed_s=11.0)
    html = render_progress(loading)
    assert "loading model · 11.0 s" in html and "ETA" not in html and 'data-phase="loading"' in html
    assert "正在加载模型" in render_progress(loading, "zh-CN")
    sampling = JobSnapshot("j", "running", phase="sampling", step=3, total_steps=12, elapsed_s=1.0, eta_s=3.0)
    assert "sampling · step 3/12 · 1.0 s · ETA 3.0 s" in render_progress(sampling)

    out = io.StringIO()
    bar = PhaseBar(out)
    bar.update({"phase": "loading", "step": 0, "total_steps": 0, "batch_count": 1})
    bar.update({"phase": "sampling", "step": 5, "total_steps": 10, "batch_index": 1, "batch_count": 2})
    assert bar.bar.total == 20 and bar.bar.n == 15
    bar.close()
    assert "Loading model" in out.getvalue() and "Sampling" in out.getvalue()
