"""Model folders that used to hang or break the host (issue #23, point 5), against
``python -m core serve`` in its own process (a hang there fails the test by timeout
instead of stalling pytest): a FIFO named like a checkpoint, a ``loop -> .`` symlink in
Stable-diffusion/ and Lora/, a broken link; each model and LoRA is listed once, and
``/sdapi/v1/loras`` lists what the LoRA library lists."""

from __future__ import annotations

import os
import shutil

import httpx

from tests.api.conftest import TINY_MODEL, free_port, start_server_process, wait_healthy


def odd_models_folder(root, tiny_sd15_dir):
    checkpoints, loras = root / "Stable-diffusion", root / "Lora"
    shutil.copytree(tiny_sd15_dir, checkpoints / TINY_MODEL)
    os.mkfifo(checkpoints / "fifo.safetensors")  # opening it would block forever
    (checkpoints / "loop").symlink_to(".", target_is_directory=True)
    (checkpoints / "nested").mkdir()
    (checkpoints / "nested" / "up").symlink_to("..", target_is_directory=True)
    (checkpoints / "gone.safetensors").symlink_to(root / "missing.safetensors")
    (loras / "styles").mkdir(parents=True)
    (loras / "styles" / "ink.safetensors").write_bytes(b"not a real lora, only listed")
    (loras / "flat.safetensors").write_bytes(b"not a real lora either")
    (loras / "loop").symlink_to(".", target_is_directory=True)
    (loras / "styles" / "again").symlink_to("../styles", target_is_directory=True)
    os.mkfifo(loras / "pipe.safetensors")
    return root


def test_odd_model_folders_neither_hang_nor_repeat(tmp_path, tiny_sd15_dir):
    models = odd_models_folder(tmp_path / "models", tiny_sd15_dir)
    data_dir, log, port = tmp_path / "data", tmp_path / "server.log", free_port()
    process = start_server_process(data_dir, models, port, log)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            wait_healthy(client, process, log, timeout=120)
            names = [m["model_name"] for m in client.get("/sdapi/v1/sd-models").json()]
            assert names.count(TINY_MODEL) == 1, names
            assert not [n for n in names if "fifo" in n or "gone" in n or n.startswith(("loop", "nested"))], (
                names
            )
            loras = [item["name"] for item in client.get("/sdapi/v1/loras").json()]
            # each once (the shipped LoRA folder is listed too), the FIFO never
            assert loras.count("flat") == 1 and loras.count("ink") == 1 and "pipe" not in loras, loras
            generated = client.post(
                "/sdapi/v1/txt2img", json={"prompt": "x", "steps": 1, "width": 64, "height": 64}
            )
            assert generated.status_code == 200, generated.text[:300]
        text = log.read_text()
        assert "fifo.safetensors: not a regular file" in text
        assert "a loop?" in text or "already listed" in text
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_lora_library_and_the_api_list_the_same_files(tmp_path, tiny_sd15_dir):
    from extensions.lora.library import LoraLibrary
    from plugin_api.scanning import LORA_SUFFIXES, scan_model_files

    models = odd_models_folder(tmp_path / "models", tiny_sd15_dir)
    library = [info.path for info in LoraLibrary([models / "Lora"]).scan()]
    api_listing = [item.path for item in scan_model_files(models / "Lora", LORA_SUFFIXES)]
    assert sorted(map(str, library)) == sorted(map(str, api_listing))
    assert sorted(p.name for p in library) == ["flat.safetensors", "ink.safetensors"]
