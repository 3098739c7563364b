"""Install and remove extensions: from a git URL, a local folder or a zip file.

An extension's requirements are installed with every package of Easel's lock
(``requirements.lock``) held at the version installed here, so an extension can never move
torch, diffusers or anything they need. A requirement that conflicts with a held package
is refused before pip runs; a conflict deeper down is explained by naming the package pip
would have moved; any failure removes what was copied, so a failed install leaves no trace.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from core import lockfile
from core.config import BUNDLED_EXTENSION_NAMES, BUNDLED_EXTENSIONS_DIR
from core.plugins.manifest import MANIFEST_NAME, read_manifest

# What the core needs; held when Easel runs without its checkout's lock (a wheel install).
CORE_PACKAGES = (
    "torch", "diffusers", "transformers", "safetensors", "peft", "accelerate",
    "pluggy", "gradio", "fastapi", "uvicorn", "pillow", "numpy", "tokenizers",
    "huggingface-hub",
)  # fmt: skip
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class InstallError(RuntimeError):
    """An install was refused or failed; nothing was left behind."""


@dataclass
class InstallResult:
    name: str
    path: Path
    requirements: list[str]


def _unlocked_core_names() -> set[str]:
    names = set(CORE_PACKAGES)
    try:
        for req in importlib.metadata.requires("easel") or []:
            parsed = Requirement(req)
            if parsed.marker is None or parsed.marker.evaluate({"extra": ""}):
                names.add(parsed.name)
    except importlib.metadata.PackageNotFoundError:
        pass
    return names


def protected_versions() -> dict[str, str]:
    """Held packages -> their installed versions: every locked package (the core's list
    without a lock), at the exact version installed, so nothing moves, not even a torch
    build with a local label such as ``2.14.1+cu126``."""
    try:
        names = set(lockfile.locked_versions()) - lockfile.ENVIRONMENT_TOOLS
    except lockfile.LockError:
        names = _unlocked_core_names()
    versions = {}
    for name in names:
        installed = lockfile.installed_version(name)
        if installed is not None:
            versions[canonicalize_name(name)] = installed
    return versions


def check_requirements(requirements: list[str], source: str) -> list[Requirement]:
    """Parse requirements; refuse any that would move a package Easel holds."""
    protected = protected_versions()
    parsed = []
    for line in requirements:
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            raise InstallError(f"{source}: invalid requirement {line!r}: {exc}") from exc
        if req.url:
            raise InstallError(f"{source}: requirement {line!r} points at a URL; only names are allowed")
        installed = protected.get(canonicalize_name(req.name))
        if installed is not None and not req.specifier.contains(installed, prereleases=True):
            raise InstallError(
                f"{source}: requirement {line!r} conflicts with {req.name} {installed}, which "
                f"Easel itself needs (requirements.lock); an extension may not downgrade or "
                f"replace it. Ask the extension's author for a version that supports "
                f"{req.name} {installed}."
            )
        parsed.append(req)
    return parsed


def _pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)


def moved_packages(requirements: list[str]) -> list[str]:
    """Which held packages pip would move to satisfy ``requirements`` left to itself
    (a dry run without the holds), as "name installed -> wanted" lines."""
    proc = _pip("install", "--dry-run", "--quiet", "--report", "-", *requirements)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return []
    protected = protected_versions()
    moved = []
    for item in report.get("install", []):
        name = canonicalize_name(item["metadata"]["name"])
        wanted = item["metadata"]["version"]
        if name in protected and wanted != protected[name]:
            moved.append(f"{name} {protected[name]} -> {wanted}")
    return moved


def pip_install(requirements: list[str], source: str) -> None:
    if not requirements:
        return
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as constraints:
        for name, version in sorted(protected_versions().items()):
            constraints.write(f"{name}=={version}\n")
    try:
        proc = _pip("install", "--constraint", constraints.name, *requirements)
    finally:
        Path(constraints.name).unlink(missing_ok=True)
    if proc.returncode != 0:
        moved = moved_packages(requirements)
        if moved:
            raise InstallError(
                f"{source}: its requirements would move packages Easel needs "
                f"(requirements.lock): {'; '.join(moved)}. Nothing was installed; ask the "
                "extension's author for versions that work with these."
            )
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise InstallError(f"{source}: installing requirements failed; nothing was kept.\n{tail}")


def read_requirements(folder: Path) -> list[str]:
    reqs = list(read_manifest(folder / MANIFEST_NAME, folder.name).requirements)
    req_file = folder / "requirements.txt"
    if req_file.is_file():
        for line in req_file.read_text("utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                reqs.append(line)
    return reqs


def _safe_extract(archive: Path, into: Path) -> Path:
    with zipfile.ZipFile(archive) as zf:
        for member in zf.namelist():
            target = (into / member).resolve()
            if not target.is_relative_to(into.resolve()):
                raise InstallError(f"{archive}: refuses path {member!r} outside the archive")
        zf.extractall(into)
    entries = [p for p in into.iterdir() if not p.name.startswith(("__MACOSX", "."))]
    # A zip of one folder holds the extension in that folder; otherwise it is the root.
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else into


def _fetch(source: str, scratch: Path) -> Path:
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if path.is_file() and zipfile.is_zipfile(path):
        return _safe_extract(path, scratch / "unzipped")
    if re.match(r"^(https?|git|ssh|file)://|^git@", source) or source.endswith(".git"):
        dest = scratch / "clone"
        proc = subprocess.run(
            ["git", "clone", "--depth", "1", source, str(dest)], capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise InstallError(f"git clone {source} failed: {proc.stderr.strip()[-500:]}")
        shutil.rmtree(dest / ".git", ignore_errors=True)
        return dest
    raise InstallError(f"{source}: not a folder, a zip file or a git URL")


def install(source: str, target_dir: Path, name: str | None = None) -> InstallResult:
    """Copy the extension into ``target_dir`` and install its requirements, or nothing."""
    with tempfile.TemporaryDirectory(prefix="easel-install-") as scratch:
        folder = _fetch(source, Path(scratch))
        if not (folder / "__init__.py").is_file():
            raise InstallError(f"{source}: an extension folder needs an __init__.py")
        # A folder names itself; a clone or a zip without a top folder is named by its source.
        from_source = Path(source.rstrip("/")).name.removesuffix(".git").removesuffix(".zip")
        default = from_source if folder.parent == Path(scratch) else folder.name
        default = re.sub(r"[^A-Za-z0-9_]", "_", default)
        name = name or read_manifest(folder / MANIFEST_NAME, default).name
        if not NAME_PATTERN.match(name):
            raise InstallError(f"{source}: {name!r} is not a usable extension name")
        requirements = read_requirements(folder)
        check_requirements(requirements, source)
        destination = target_dir / name
        if destination.exists():
            raise InstallError(f"an extension named {name!r} is already installed at {destination}")
        target_dir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(folder, destination, ignore=shutil.ignore_patterns(".git", "__pycache__"))
        try:
            pip_install(requirements, source)
        except BaseException:
            shutil.rmtree(destination, ignore_errors=True)
            raise
    return InstallResult(name=name, path=destination, requirements=requirements)


def removal_target(name: str, folders: list[Path]) -> Path:
    """The file or folder ``remove`` would delete, checked: ``name`` is an extension name,
    never a path (``./controlnet``, ``..`` and ``../x`` are refused before any look-up),
    the entry is a direct child of one of ``folders``, and it is not a bundled extension.
    A symlinked extension is the link itself: what it points to is never touched."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise InstallError(
            f"{str(name)[:80]!r} is not an extension name: remove takes a name (letters, digits, "
            "'_' and '-'), never a path"
        )
    bundled_root = BUNDLED_EXTENSIONS_DIR.resolve()
    bundled_names = {n.casefold() for n in BUNDLED_EXTENSION_NAMES}
    for folder in folders:
        base = Path(folder).resolve()
        for entry_name in (name, f"{name}.py"):
            entry = base / entry_name  # the parent resolved, the entry itself not followed
            if not os.path.lexists(entry):
                continue
            if entry.parent != base:  # cannot happen for a NAME_PATTERN name: belt and braces
                raise InstallError(f"{entry} is not directly inside {base}")
            if base == bundled_root and Path(entry_name).stem.casefold() in bundled_names:
                raise InstallError(f"{name} is bundled; use 'easel extensions disable {name}'")
            return entry
    raise InstallError(f"no installed extension named {name!r} in {', '.join(map(str, folders))}")


def remove(name: str, folders: list[Path]) -> Path:
    """Delete an installed (user) extension; bundled ones can only be disabled."""
    target = removal_target(name, folders)
    if target.is_symlink() or not target.is_dir():
        target.unlink()
    else:
        shutil.rmtree(target)
    return target


def user_extension_folders(settings: Any) -> list[Path]:
    """Where users' extensions are installed and may be removed from: the folders given
    with --extensions-dir, else extensions/ (beside the bundled ones)."""
    return list(settings.extension_dirs) or [BUNDLED_EXTENSIONS_DIR]
