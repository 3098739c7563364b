"""``plugin_api.files.read_safetensors_header``: the one safetensors header reader the core
and extensions share."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from plugin_api.files import SafetensorsHeaderError, read_safetensors_header


def test_reads_tensors_metadata_and_length(tmp_path):
    path = tmp_path / "ok.safetensors"
    save_file(
        {"a": torch.zeros(2, 3), "b": torch.ones(4, dtype=torch.float16)}, str(path), metadata={"x": "1"}
    )
    header = read_safetensors_header(path)
    assert header.shapes() == {"a": [2, 3], "b": [4]}
    assert header.tensors["b"]["dtype"] == "F16" and header.metadata == {"x": "1"}
    assert path.stat().st_size == 8 + header.header_length + 2 * 3 * 4 + 4 * 2


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x01\x02", "only 2 bytes"),
        (b"PK\x03\x04" + b"\x00" * 60, "not a valid safetensors file"),
        ((6).to_bytes(8, "little") + b"[1, 2]", "not a JSON object"),
        ((5).to_bytes(8, "little") + b"{oops", "corrupt safetensors header"),
    ],
)
def test_bad_files_name_the_file_and_the_problem(tmp_path, content, expected):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(SafetensorsHeaderError, match=expected) as info:
        read_safetensors_header(path)
    assert str(path) in str(info.value)


def test_truncated_and_padded_files_are_refused(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file({"a": torch.zeros(64)}, str(path))
    raw = path.read_bytes()
    for name, content in (("short", raw[:-10]), ("long", raw + b"\0" * 8)):
        bad = tmp_path / f"{name}.safetensors"
        bad.write_bytes(content)
        with pytest.raises(SafetensorsHeaderError, match="truncated or corrupt"):
            read_safetensors_header(bad)
    with pytest.raises(SafetensorsHeaderError, match="cannot read"):
        read_safetensors_header(tmp_path / "missing.safetensors")
