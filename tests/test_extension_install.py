"""`easel extensions install/remove/enable/disable/list` through the real CLI."""

import json
import subprocess
import sys
import zipfile

import pytest
import torch


def easel(*args, tmp_path):
    cmd = [sys.executable, "-m", "core", *args, "--data-dir", str(tmp_path / "data"),
           "--extensions-dir", str(tmp_path / "installed")]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def pip_freeze():
    return subprocess.run(
        [sys.executable, "-m", "pip", "freeze"], capture_output=True, text=True, check=True
    ).stdout


def make_extension(folder, requirements=None, manifest=""):
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text(
        "from plugin_api import hookimpl\n\n@hookimpl\ndef transform_prompt(request):\n"
        "    request.prompt += ' installed'\n"
    )
    if requirements is not None:
        (folder / "requirements.txt").write_text("\n".join(requirements) + "\n")
    if manifest:
        (folder / "extension.toml").write_text(manifest)
    return folder


def test_install_pinning_an_old_torch_is_refused_and_nothing_changes(tmp_path):
    source = make_extension(tmp_path / "src" / "old_torch_ext", ["numpy", "torch==1.13.1"])
    before = pip_freeze()
    proc = easel("extensions", "install", str(source), tmp_path=tmp_path)
    assert proc.returncode != 0
    assert "torch==1.13.1" in proc.stderr
    assert f"torch {torch.__version__.split('+')[0]}" in proc.stderr  # without the local "+cu130"
    assert "may not downgrade" in proc.stderr
    assert not (tmp_path / "installed" / "old_torch_ext").exists()
    assert pip_freeze() == before


def test_install_list_disable_enable_remove_a_local_folder(tmp_path):
    source = make_extension(tmp_path / "src" / "nice_ext", ["pluggy>=1.0"], manifest='version = "2.1.0"\n')
    proc = easel("extensions", "install", str(source), tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "installed" / "nice_ext" / "__init__.py").is_file()

    listing = easel("extensions", "list", "--json", tmp_path=tmp_path)
    rows = {r["name"]: r for r in json.loads(listing.stdout)}
    assert rows["nice_ext"]["state"] == "loaded" and rows["nice_ext"]["version"] == "2.1.0"

    assert easel("extensions", "disable", "nice_ext", tmp_path=tmp_path).returncode == 0
    table = easel("extensions", "list", tmp_path=tmp_path).stdout
    assert any(line.startswith("nice_ext") and "disabled" in line for line in table.splitlines())
    assert easel("extensions", "enable", "nice_ext", tmp_path=tmp_path).returncode == 0

    again = easel("extensions", "install", str(source), tmp_path=tmp_path)
    assert again.returncode != 0 and "already installed" in again.stderr

    assert easel("extensions", "remove", "nice_ext", tmp_path=tmp_path).returncode == 0
    assert not (tmp_path / "installed" / "nice_ext").exists()


def test_install_from_zip_and_refuse_path_traversal(tmp_path):
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("zipped_ext/__init__.py", "from plugin_api import hookimpl\n")
    assert easel("extensions", "install", str(good), tmp_path=tmp_path).returncode == 0
    assert (tmp_path / "installed" / "zipped_ext" / "__init__.py").is_file()

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("__init__.py", "")
        zf.writestr("../../escaped.py", "print('pwned')")
    proc = easel("extensions", "install", str(evil), tmp_path=tmp_path)
    assert proc.returncode != 0 and "outside the archive" in proc.stderr
    assert not (tmp_path / "escaped.py").exists()


@pytest.mark.parametrize(
    ("source", "message"),
    [("does/not/exist", "not a folder, a zip file or a git URL")],
)
def test_install_bad_sources_are_refused(tmp_path, source, message):
    proc = easel("extensions", "install", source, tmp_path=tmp_path)
    assert proc.returncode != 0 and message in proc.stderr


def test_bundled_extensions_cannot_be_removed(tmp_path):
    proc = easel("extensions", "remove", "lora", tmp_path=tmp_path)
    assert proc.returncode == 2 and "disable" in proc.stderr
