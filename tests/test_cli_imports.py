"""What the CLI imports: `easel --help` stays instant (no torch, no web stack), and a local
`easel generate` loads the engine only, never the server's or the WebUI's libraries.

Checked in a fresh interpreter (sys.modules after the command): a correctness check of
the lazy imports, not a timing (timings live in docs/speed.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WEB_STACK = {"gradio", "fastapi", "starlette", "uvicorn", "gradio_client", "sse_starlette"}
HEAVY = {"torch", "diffusers", "transformers", "numpy", "PIL", "httpx", "pydantic", *WEB_STACK}
OPTIONAL_MODELS = {"controlnet_aux", "spandrel"}


def imported_after(argv: list[str]) -> set[str]:
    """Top-level packages in sys.modules after ``easel ARGV`` ran in a fresh interpreter."""
    code = (
        "import json, sys\n"
        "from core.cli.main import run_command\n"
        f"try:\n    run_command({argv!r})\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=ROOT
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("argv", [["--help"], ["generate", "--help"], ["--version"]])
def test_help_imports_nothing_heavy(argv):
    assert not imported_after(argv) & HEAVY


@pytest.mark.slow
def test_local_generate_imports_no_web_stack(tmp_path, tiny_sd15_dir):
    models = tmp_path / "models" / "Stable-diffusion"
    models.mkdir(parents=True)
    (models / tiny_sd15_dir.name).symlink_to(tiny_sd15_dir.resolve(), target_is_directory=True)
    argv = [
        "generate", "a cat", "--local", "--model", tiny_sd15_dir.name, "--steps", "1", "--width", "64",
        "--height", "64", "--data-dir", str(tmp_path / "data"), "--models-dir", str(tmp_path / "models"),
    ]  # fmt: skip
    modules = imported_after(argv)
    assert "torch" in modules and "diffusers" in modules  # it did generate
    assert not modules & (WEB_STACK | OPTIONAL_MODELS)
    assert list((tmp_path / "data" / "outputs").rglob("*.png"))
