"""The `easel` command answers --help for every sub-command."""

import subprocess
import sys

import pytest

from core.cli.main import SUBCOMMANDS


@pytest.mark.parametrize("command", [c.replace("_", "-") for c in SUBCOMMANDS])
def test_every_subcommand_has_help(command):
    proc = subprocess.run([sys.executable, "-m", "core", command, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "usage: easel" in proc.stdout
