"""Listing models reads each checkpoint once: with ``--allow-pickle`` a ``.ckpt`` is
unpickled on the first listing only (then from memory, and after a restart from the data
folder) until its size or modification time changes (core/models/header_cache.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from core.config import Settings
from core.models import files
from core.models.manager import ModelManager
from tests import tiny_models


def manager_for(tmp_path: Path, allow_pickle: bool) -> ModelManager:
    settings = Settings(
        data_dir=tmp_path / "data", models_dir=tmp_path / "models", allow_pickle=allow_pickle, device="cpu"
    )
    return ModelManager(settings)


@pytest.fixture
def unpickles(monkeypatch) -> list[Path]:
    """Every real unpickling of a checkpoint (the real function runs; calls are counted)."""
    calls: list[Path] = []
    real = files.load_pickle_state_dict

    def counting(path: Path):
        calls.append(Path(path))
        return real(path)

    monkeypatch.setattr(files, "load_pickle_state_dict", counting)
    return calls


@pytest.fixture
def ckpt(tmp_path) -> Path:
    path = tmp_path / "models" / "Stable-diffusion" / "old.ckpt"
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": tiny_models.sd15_to_ldm(tiny_models.tiny_sd15_components())}, path)
    return path


def test_listings_unpickle_a_ckpt_once(tmp_path, ckpt, unpickles):
    manager = manager_for(tmp_path, allow_pickle=True)
    first = {i.name: i for i in manager.list()}
    assert (first["old"].family, first["old"].format) == ("sd15", "pickle")
    for _ in range(3):
        again = {i.name: i for i in manager.refresh()}
        assert (again["old"].family, again["old"].prediction) == (
            first["old"].family,
            first["old"].prediction,
        )
    assert unpickles == [ckpt]

    # a restart (a new manager on the same data folder) reads the summary from disk
    restarted = manager_for(tmp_path, allow_pickle=True)
    assert restarted.info("old").family == "sd15"
    assert unpickles == [ckpt]


def test_a_changed_file_is_read_again(tmp_path, ckpt, unpickles):
    manager = manager_for(tmp_path, allow_pickle=True)
    manager.list()
    stat = ckpt.stat()
    os.utime(ckpt, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    manager.refresh()
    assert unpickles == [ckpt, ckpt]
    manager.refresh()
    assert len(unpickles) == 2


def test_the_cache_never_lets_a_pickle_in_without_the_opt_in(tmp_path, ckpt, unpickles):
    manager_for(tmp_path, allow_pickle=True).list()  # cached on disk
    refused = manager_for(tmp_path, allow_pickle=False)
    assert "old" not in [i.name for i in refused.list()]
    assert "--allow-pickle" in refused.problems["old"]


def test_safetensors_listing_reads_each_file_once(tmp_path):
    path = tmp_path / "models" / "Stable-diffusion" / "m.safetensors"
    tiny_models.write_single_file(path, tiny_models.sd15_to_ldm(tiny_models.tiny_sd15_components()))
    manager = manager_for(tmp_path, allow_pickle=False)
    manager.list()
    manager.refresh()
    manager.refresh()
    assert manager.summaries.reads == 1
