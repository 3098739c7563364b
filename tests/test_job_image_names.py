"""Images of a job that may run twice (easel worker: a dead worker's job is run again) are
named by job id and index, so the second run replaces the first run's files instead of
adding a second set; the embedded worker keeps A1111's numbering."""

from __future__ import annotations

import shutil

import pytest

from plugin_api.types import GenerationRequest


@pytest.fixture(scope="module")
def sd15_only(tmp_path_factory, tiny_sd15_dir):
    root = tmp_path_factory.mktemp("models-sd15")
    shutil.copytree(tiny_sd15_dir, root / "Stable-diffusion" / "tiny-sd15")
    return root


def make_engine(tmp_path, models_dir, **settings):
    from core.config import Settings
    from core.engine import Engine
    from core.host import Host

    host = Host(Settings(data_dir=tmp_path, models_dir=models_dir, safe_mode=True, device="cpu", **settings))
    return Engine(host.start())


def request() -> GenerationRequest:
    return GenerationRequest(prompt="a red circle", steps=2, width=64, height=64, seed=5, batch_size=2)


def test_a_job_run_twice_saves_its_images_once(tmp_path, sd15_only):
    engine = make_engine(tmp_path, sd15_only, job_image_names=True)
    first = engine.generate(request(), job_id="abc123")
    second = engine.generate(request(), job_id="abc123")
    names = [p.rsplit("/", 1)[1] for p in first.paths]
    assert names == ["abc123-0-5.png", "abc123-1-6.png"]
    assert second.paths == first.paths
    assert sorted(p.name for p in (tmp_path / "outputs").rglob("*.png")) == names


def test_the_embedded_worker_keeps_a1111_numbers(tmp_path, sd15_only):
    engine = make_engine(tmp_path, sd15_only)
    engine.generate(request(), job_id="abc123")
    engine.generate(request(), job_id="def456")  # the same job again reuses its images (journal)
    names = sorted(p.name for p in (tmp_path / "outputs").rglob("*.png"))
    assert names == ["00000-5.png", "00001-6.png", "00002-5.png", "00003-6.png"]
