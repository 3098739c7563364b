"""Model files judged by content: pickle refused (opt-in with weights_only), truncated or
corrupt safetensors and unknown architectures give clear errors and register nothing."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from core.config import Settings
from core.errors import ModelError
from core.models.manager import ModelManager
from tests import tiny_models


def manager_for(tmp_path: Path, allow_pickle: bool = False) -> ModelManager:
    settings = Settings(data_dir=tmp_path / "data", models_dir=tmp_path / "models", allow_pickle=allow_pickle)
    settings.device = "cpu"
    return ModelManager(settings)


def checkpoints(tmp_path: Path) -> Path:
    folder = tmp_path / "models" / "Stable-diffusion"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def sd15_state():
    return tiny_models.sd15_to_ldm(tiny_models.tiny_sd15_components())


def test_pickle_checkpoint_refused_with_opt_in_hint(tmp_path, sd15_state):
    path = checkpoints(tmp_path) / "old.ckpt"
    torch.save({"state_dict": sd15_state}, path)
    before = digest(path)
    manager = manager_for(tmp_path)
    assert "old" not in [i.name for i in manager.list()]
    with pytest.raises(ModelError) as error:
        manager.info("old")
    message = str(error.value)
    assert "old.ckpt" in message and "--allow-pickle" in message and "EASEL_ALLOW_PICKLE=1" in message
    assert digest(path) == before


def test_pickle_renamed_safetensors_is_refused(tmp_path, sd15_state):
    path = checkpoints(tmp_path) / "sneaky.safetensors"
    torch.save(sd15_state, path)  # a zip-based torch pickle with the wrong name
    manager = manager_for(tmp_path)
    assert "sneaky" not in [i.name for i in manager.list()]
    message = manager.problems["sneaky"]
    assert "pickle" in message and "despite its .safetensors name" in message


def test_truncated_safetensors_is_refused(tmp_path, sd15_state):
    good = checkpoints(tmp_path) / "whole.safetensors"
    save_file({k: v.contiguous() for k, v in sd15_state.items()}, str(good))
    cut = good.with_name("cut.safetensors")
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    manager = manager_for(tmp_path)
    names = [i.name for i in manager.list()]
    assert "whole" in names and "cut" not in names
    assert "truncated" in manager.problems["cut"] and "cut.safetensors" in manager.problems["cut"]


def test_corrupt_header_is_refused(tmp_path):
    path = checkpoints(tmp_path) / "garbage.safetensors"
    header = b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]'  # no closing brace
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 8)
    manager = manager_for(tmp_path)
    assert "garbage" not in [i.name for i in manager.list()]
    assert "corrupt" in manager.problems["garbage"]


def test_unknown_architecture_names_file_and_keys(tmp_path):
    path = checkpoints(tmp_path) / "mystery.safetensors"
    save_file({"encoder.block.0.weight": torch.zeros(4, 4), "decoder.head.bias": torch.zeros(4)}, str(path))
    manager = manager_for(tmp_path)
    assert "mystery" not in [i.name for i in manager.list()]
    message = manager.problems["mystery"]
    assert "mystery.safetensors" in message and "unknown model architecture" in message
    assert "encoder.block.0.weight" in message


def test_family_comes_from_keys_not_the_name(tmp_path, sd15_state):
    path = checkpoints(tmp_path) / "sdxl-turbo-zimage.safetensors"
    save_file({k: v.contiguous() for k, v in sd15_state.items()}, str(path))
    info = manager_for(tmp_path).info("sdxl-turbo-zimage")
    assert (info.family, info.format) == ("sd15", "safetensors")
    # A1111 short hash: the first 10 hex digits of the file's sha256
    assert info.hash == digest(path)[:10]


def test_pickle_opt_in_loads_with_weights_only(tmp_path, sd15_state, tiny_sd15_dir):
    path = checkpoints(tmp_path) / "legacy.ckpt"
    torch.save({"state_dict": sd15_state}, path)
    tiny_models.write_config_sidecar(tiny_sd15_dir, path)
    manager = manager_for(tmp_path, allow_pickle=True)
    info = manager.info("legacy")
    assert (info.family, info.format) == ("sd15", "pickle")
    model, fresh = manager.acquire("legacy")
    assert fresh
    key = "conv_in.weight"
    assert torch.equal(
        model.components["unet"].state_dict()[key],
        sd15_state["model.diffusion_model.input_blocks.0.0.weight"],
    )


class _Exploit:
    def __reduce__(self):
        return (Path.write_text, (Path("pwned.txt"), "x"))


def test_opt_in_still_refuses_code_in_pickles(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = checkpoints(tmp_path) / "evil.ckpt"
    torch.save({"state_dict": {"model.diffusion_model.input_blocks.0.0.weight": _Exploit()}}, path)
    manager = manager_for(tmp_path, allow_pickle=True)
    assert "evil" not in [i.name for i in manager.list()]
    assert "weights-only" in manager.problems["evil"]
    assert not (tmp_path / "pwned.txt").exists()


def test_hash_cache_is_reused(tmp_path, sd15_state):
    path = checkpoints(tmp_path) / "cached.safetensors"
    save_file({k: v.contiguous() for k, v in sd15_state.items()}, str(path))
    manager = manager_for(tmp_path)
    first = manager.info("cached").hash
    cache = json.loads((tmp_path / "data" / ".easel" / "model_hashes.json").read_text())
    assert cache[str(path.resolve())]["sha256"][:10] == first


def test_sd2_checkpoint_detected_with_its_defaults(tmp_path, sd15_state):
    components = tiny_models.tiny_sd15_components()
    state = {k: v for k, v in sd15_state.items() if not k.startswith("cond_stage_model.")}
    state.update(
        tiny_models.openclip_to_ldm(components["text_encoder"].state_dict(), "cond_stage_model.model.")
    )
    path = checkpoints(tmp_path) / "v2.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    manager = manager_for(tmp_path)
    info = manager.info("v2")
    assert (info.family, info.variant) == ("sd15", "sd2")
    from core.families import get_family

    defaults = get_family("sd15").defaults_for(info.variant)
    assert (defaults.width, defaults.height) == (768, 768)
    config_dir = manager.config_dir_for(info, get_family("sd15"))
    assert (
        json.loads((config_dir / "scheduler" / "scheduler_config.json").read_text())["prediction_type"]
        == "v_prediction"
    )
