"""Pickle inside diffusers folders (issue #23, point 11): ``unet/diffusion_pytorch_model.bin``
used to load without ``--allow-pickle`` (weights_only, but loaded). Now such a folder is
refused when listed and again when loaded, with a message naming the file, and loads
only with ``--allow-pickle``."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file

from core.errors import ModelError
from tests.api.conftest import TINY_MODEL, serving

SMALL = {"prompt": "x", "steps": 1, "width": 64, "height": 64}


def pickle_the_unet(folder):
    """The UNet's weights as a torch pickle, the safetensors file gone."""
    unet = folder / "unet"
    weights = unet / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(weights), unet / "diffusion_pytorch_model.bin")
    weights.unlink()


@pytest.fixture
def models(tmp_path, tiny_sd15_dir):
    root = tmp_path / "models" / "Stable-diffusion"
    shutil.copytree(tiny_sd15_dir, root / TINY_MODEL)
    shutil.copytree(tiny_sd15_dir, root / "pickled")
    pickle_the_unet(root / "pickled")
    return tmp_path / "models"


def test_a_pickled_diffusers_folder_is_refused_by_default(tmp_path, models):
    with serving(tmp_path / "data", models) as easel, easel.client() as client:
        listed = [m["model_name"] for m in client.get("/sdapi/v1/sd-models").json()]
        assert TINY_MODEL in listed and "pickled" not in listed
        response = client.post("/api/v1/jobs", json={**SMALL, "model": "pickled"})
        assert response.status_code == 422, response.text
        message = response.json()["errors"]
        assert "unet/diffusion_pytorch_model.bin" in message and "--allow-pickle" in message
        assert client.post("/api/v1/jobs", json={**SMALL, "model": TINY_MODEL}).status_code == 202


def test_it_loads_with_allow_pickle(tmp_path, models):
    with serving(tmp_path / "data", models, allow_pickle=True) as easel, easel.client() as client:
        assert "pickled" in [m["model_name"] for m in client.get("/sdapi/v1/sd-models").json()]
        response = client.post(
            "/sdapi/v1/txt2img", json={**SMALL, "override_settings": {"sd_model_checkpoint": "pickled"}}
        )
        assert response.status_code == 200 and len(response.json()["images"]) == 1, response.text[:300]


def test_weights_swapped_after_listing_are_refused_at_load(tmp_path, models, monkeypatch):
    """Two layers: the check runs again at load time, and diffusers itself is told to
    read safetensors only (shown with the check switched off)."""
    from core.config import Settings
    from core.models import manager as manager_module

    settings = Settings.from_env(data_dir=tmp_path / "data", models_dir=models)
    models_manager = manager_module.ModelManager(settings)
    assert TINY_MODEL in [i.name for i in models_manager.list()]
    pickle_the_unet(models / "Stable-diffusion" / TINY_MODEL)
    with pytest.raises(ModelError, match="pickle weights in a diffusers folder"):
        models_manager.acquire(TINY_MODEL)
    monkeypatch.setattr(manager_module, "refuse_pickle_folder", lambda *args: None)
    with pytest.raises(ModelError, match="safetensors"):
        models_manager.acquire(TINY_MODEL)
