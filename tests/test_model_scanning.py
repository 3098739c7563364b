"""``plugin_api.scanning.scan_model_files``: regular files only, symlinks followed once,
each file once, a bounded walk (issue #23, point 5)."""

from __future__ import annotations

import os
import threading

from plugin_api.scanning import scan_model_files


def touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_regular_files_only_and_nothing_is_opened(tmp_path):
    touch(tmp_path / "a.safetensors")
    os.mkfifo(tmp_path / "b.safetensors")
    warnings: list[str] = []
    # a FIFO that someone opened would block this thread: run it with a time limit
    result: list = []
    worker = threading.Thread(
        target=lambda: result.append(scan_model_files(tmp_path, [".safetensors"], warn=warnings.append))
    )
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "the scan blocked on the FIFO"
    assert [f.relative for f in result[0]] == ["a.safetensors"]
    assert any("b.safetensors: not a regular file" in w for w in warnings)


def test_loops_are_walked_once_and_each_file_listed_once(tmp_path):
    touch(tmp_path / "m1.safetensors")
    touch(tmp_path / "sub" / "m2.safetensors")
    (tmp_path / "loop").symlink_to(".", target_is_directory=True)
    (tmp_path / "sub" / "up").symlink_to("..", target_is_directory=True)
    (tmp_path / "alias.safetensors").symlink_to(tmp_path / "m1.safetensors")
    (tmp_path / "broken.safetensors").symlink_to(tmp_path / "nowhere.safetensors")
    warnings: list[str] = []
    found = scan_model_files(tmp_path, [".safetensors"], warn=warnings.append)
    # "alias" comes first by name, so it is the one listed for that file
    assert [f.relative for f in found] == ["alias.safetensors", "sub/m2.safetensors"]
    assert any("loop" in w for w in warnings) and any("broken" in w for w in warnings)


def test_a_linked_folder_is_followed_once(tmp_path):
    outside = tmp_path / "outside"
    touch(outside / "shared.safetensors")
    root = tmp_path / "root"
    root.mkdir()
    (root / "link1").symlink_to(outside, target_is_directory=True)
    (root / "link2").symlink_to(outside, target_is_directory=True)
    found = scan_model_files(root, [".safetensors"], warn=lambda _m: None)
    assert [f.relative for f in found] == ["link1/shared.safetensors"]


def test_diffusers_folders_are_not_descended(tmp_path):
    touch(tmp_path / "model" / "model_index.json", b"{}")
    touch(tmp_path / "model" / "unet" / "diffusion_pytorch_model.safetensors")
    touch(tmp_path / "single.safetensors")
    found = scan_model_files(tmp_path, [".safetensors"], folder_marker="model_index.json")
    assert [(f.relative, f.is_folder) for f in found] == [("model", True), ("single.safetensors", False)]


def test_the_walk_is_bounded(tmp_path):
    for index in range(20):
        touch(tmp_path / f"d{index:02d}" / "m.safetensors")
    warnings: list[str] = []
    found = scan_model_files(tmp_path, [".safetensors"], max_entries=10, warn=warnings.append)
    assert len(found) < 20 and any("listing stopped" in w for w in warnings)
    deep = tmp_path / "deep"
    path = deep
    for level in range(6):
        path = path / f"l{level}"
    touch(path / "far.safetensors")
    warnings.clear()
    found = scan_model_files(deep, [".safetensors"], max_depth=3, warn=warnings.append)
    assert found == [] and any("deeper than 3" in w for w in warnings)
