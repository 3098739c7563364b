"""Removing an extension takes a name, never a path (issue #23, point 3): ``remove ..``,
``remove ../x`` and ``remove ./controlnet`` used to delete the checkout, folders elsewhere
and bundled extensions. Every test plants a sibling folder beside the extensions folder
and checks that nothing outside (and nothing bundled) is deleted, through the real CLI,
the installer and the WebUI's Extensions tab."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.config import Settings
from core.host import Host
from core.plugins import installer

PATHS = [
    "..",
    "../victim",
    "./nice_ext",
    ".",
    "nice_ext/..",
    "nice_ext/../../victim",
    "",
    "../installed/nice_ext",
]


def plant(tmp_path: Path) -> tuple[Path, Path]:
    """``installed/`` with one user extension, and a ``victim/`` folder beside it."""
    installed = tmp_path / "installed"
    (installed / "nice_ext").mkdir(parents=True)
    (installed / "nice_ext" / "__init__.py").write_text("")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    return installed, victim


def intact(installed: Path, victim: Path) -> bool:
    return (victim / "precious.txt").read_text() == "keep me" and (
        installed / "nice_ext" / "__init__.py"
    ).is_file()


@pytest.mark.parametrize("name", PATHS)
def test_installer_refuses_paths(tmp_path, name):
    installed, victim = plant(tmp_path)
    with pytest.raises(installer.InstallError, match="never a path"):
        installer.remove(name, [installed])
    assert intact(installed, victim)


def test_the_real_cli_refuses_paths_and_deletes_nothing_outside(tmp_path):
    installed, victim = plant(tmp_path)
    for name in ("..", "../victim", str(victim)):
        proc = subprocess.run(
            [sys.executable, "-m", "core", "extensions", "remove", name, "--data-dir", str(tmp_path / "data"),
             "--extensions-dir", str(installed)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 1 and "never a path" in proc.stderr, (name, proc.stderr)
        assert intact(installed, victim)
        assert installed.is_dir()


@pytest.fixture
def fake_checkout(tmp_path, monkeypatch):
    """A stand-in for the checkout's extensions/ folder (bundled and user extensions
    side by side), so a failing check could only ever delete temporary files."""
    extensions = tmp_path / "checkout" / "extensions"
    for name in ("controlnet", "lora", "user_ext"):
        (extensions / name).mkdir(parents=True)
        (extensions / name / "__init__.py").write_text("")
    (tmp_path / "checkout" / "models").mkdir()
    monkeypatch.setattr(installer, "BUNDLED_EXTENSIONS_DIR", extensions)
    monkeypatch.delenv("EASEL_EXTENSIONS_DIR", raising=False)
    return extensions


@pytest.mark.parametrize("name", ["./controlnet", "controlnet/", "../extensions/lora", "..", "../models"])
def test_cli_remove_never_reaches_bundled_extensions_or_the_checkout(fake_checkout, tmp_path, name, capsys):
    from core.cli.main import main

    assert main(["extensions", "remove", name, "--data-dir", str(tmp_path / "data")]) == 1
    assert "never a path" in capsys.readouterr().err
    for kept in ("controlnet", "lora", "user_ext"):
        assert (fake_checkout / kept / "__init__.py").is_file()
    assert (fake_checkout.parent / "models").is_dir()


def test_bundled_names_are_refused_by_the_installer_too(fake_checkout):
    for name in ("controlnet", "lora"):
        with pytest.raises(installer.InstallError, match="bundled"):
            installer.remove(name, [fake_checkout])
    assert (fake_checkout / "controlnet").is_dir()
    assert installer.remove("user_ext", [fake_checkout]) == fake_checkout.resolve() / "user_ext"
    assert not (fake_checkout / "user_ext").exists()


def test_a_symlinked_extension_is_removed_as_a_link(tmp_path):
    installed, victim = plant(tmp_path)
    (installed / "linked").symlink_to(victim, target_is_directory=True)
    (installed / "single.py").symlink_to(victim / "precious.txt")
    installer.remove("linked", [installed])
    installer.remove("single", [installed])
    assert not (installed / "linked").exists() and not (installed / "single.py").is_symlink()
    assert intact(installed, victim)


def test_the_webui_tab_uses_the_same_check(tmp_path):
    from ui.extensions_tab import remove

    installed, victim = plant(tmp_path)
    host = Host(Settings.from_env(data_dir=tmp_path / "data", extension_dirs=[installed], safe_mode=True))
    for name in PATHS:
        message = remove(host, name)
        assert message.startswith(("remove refused", "choose an extension")), message
        assert intact(installed, victim)
    assert remove(host, "nice_ext").startswith("removed")
    assert not (installed / "nice_ext").exists() and victim.is_dir()
    public = Host(Settings.from_env(data_dir=tmp_path / "d2", extension_dirs=[installed], host="0.0.0.0"))
    (installed / "again").mkdir()
    assert "off while the server listens" in remove(public, "again")
    assert (installed / "again").is_dir()
