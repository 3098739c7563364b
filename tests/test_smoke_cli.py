"""The `easel` command answers --help for every sub-command."""

import subprocess
import sys

import pytest
from PIL import Image

from core.cli.main import SUBCOMMANDS


@pytest.mark.parametrize("command", [c.replace("_", "-") for c in SUBCOMMANDS])
def test_every_subcommand_has_help(command):
    proc = subprocess.run([sys.executable, "-m", "core", command, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "usage: easel" in proc.stdout


def test_generate_as_a_process_writes_whole_images_and_keeps_its_exit_code(tmp_path):
    # `easel generate` ends its process without Python's finalization (core.cli.main.console_main):
    # what it printed and wrote must be complete, and its exit code must survive.
    command = [sys.executable, "-m", "core", "generate", "a red circle on a blue background", "--seed", "5",
               "--steps", "2", "--batch", "2", "--local", "--data-dir", str(tmp_path)]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    paths = proc.stdout.split()
    assert [p.rsplit("/", 1)[1] for p in paths] == ["00000-5.png", "00001-6.png"]
    for path, seed in zip(paths, (5, 6), strict=True):
        image = Image.open(path)
        image.load()  # the whole file, not only its header
        assert f"Seed: {seed}," in image.info["parameters"]
    bad = subprocess.run([*command[:4], "x", "--steps", "0", "--local", "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert bad.returncode == 2 and "steps" in bad.stderr
