"""The lock of exact versions (``requirements.lock``) and how this environment compares.

Ranges in ``pyproject.toml`` drift: on 2026-12-02 the index served a transformers that needs
a peft that did not exist yet, and every fresh install had broken text-encoder LoRAs. The
lock pins every package the README's commands install (``make lock`` writes it with uv's
universal resolver, so lines carry environment markers). This module reads it for the
install check in ``make test``, ``easel doctor`` and the extension installer, which must
never move a locked package.
"""

from __future__ import annotations

import ast
import importlib.metadata
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

CHECKOUT = Path(__file__).resolve().parents[1]
LOCK_PATH = CHECKOUT / "requirements.lock"
PYPROJECT_PATH = CHECKOUT / "pyproject.toml"
# Tools that manage the environment itself: a venv has them whatever the lock says.
ENVIRONMENT_TOOLS = frozenset({"pip", "easel"})


class LockError(ValueError):
    """The lock file is missing or a line cannot be read; names the file and line."""


@dataclass(frozen=True)
class LockedPackage:
    name: str  # canonical (PEP 503) name
    version: str
    marker: Marker | None

    def applies(self) -> bool:
        """Whether this line is for this interpreter and platform."""
        return self.marker is None or self.marker.evaluate({"extra": ""})


@dataclass(frozen=True)
class Mismatch:
    name: str
    locked: str
    installed: str | None  # None: not installed


def read_lock(path: Path | None = None) -> list[LockedPackage]:
    """Every ``name==version [; marker]`` line; comments and ``# via`` lines are skipped."""
    path = path or LOCK_PATH
    if not path.is_file():
        raise LockError(f"{path}: no lock file (run `make lock` in a checkout)")
    packages = []
    for number, raw in enumerate(path.read_text("utf-8").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            req = Requirement(line)
        except ValueError as exc:
            raise LockError(f"{path}:{number}: cannot read {line!r}: {exc}") from exc
        pins = list(req.specifier)
        if len(pins) != 1 or pins[0].operator != "==" or "*" in pins[0].version:
            raise LockError(f"{path}:{number}: {line!r} is not an exact pin (name==version)")
        packages.append(LockedPackage(canonicalize_name(req.name), pins[0].version, req.marker))
    return packages


def locked_versions(path: Path | None = None) -> dict[str, str]:
    """Canonical name -> locked version, for the lines that apply here."""
    return {p.name: p.version for p in read_lock(path) if p.applies()}


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def same_release(installed: str, locked: str) -> bool:
    """``2.14.1+cu126`` is the locked ``2.14.1``: a CUDA build of torch keeps its local label."""
    try:
        return Version(installed).public == Version(locked).public
    except InvalidVersion:
        return installed == locked


def environment_mismatches(path: Path | None = None) -> list[Mismatch]:
    """Locked packages that are missing here or installed at another version."""
    mismatches = []
    for name, version in sorted(locked_versions(path).items()):
        if name in ENVIRONMENT_TOOLS:
            continue
        installed = installed_version(name)
        if installed is None or not same_release(installed, version):
            mismatches.append(Mismatch(name, version, installed))
    return mismatches


def declared_requirements(
    pyproject: Path | None = None, extras: tuple[str, ...] = ("test",)
) -> list[Requirement]:
    """What pyproject asks for: the dependencies, the given extras and the build system."""
    pyproject = pyproject or PYPROJECT_PATH
    data = tomllib.loads(pyproject.read_text("utf-8"))
    lines = list(data["project"]["dependencies"])
    for extra in extras:
        lines += data["project"].get("optional-dependencies", {}).get(extra, [])
    lines += data.get("build-system", {}).get("requires", [])
    return [Requirement(line) for line in lines]


def pyproject_disagreements(pyproject: Path | None = None, lock: Path | None = None) -> list[str]:
    """Each pyproject requirement must be locked, at a version inside its range."""
    lock = lock or LOCK_PATH
    locked = {}
    for package in read_lock(lock):
        locked.setdefault(package.name, []).append(package.version)
    problems = []
    for req in declared_requirements(pyproject):
        name = canonicalize_name(req.name)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        versions = locked.get(name)
        if not versions:
            problems.append(f"{req} is in pyproject.toml but not in {lock.name}")
            continue
        for version in versions:
            if not req.specifier.contains(version, prereleases=True):
                problems.append(f"{lock.name} has {name}=={version}, outside pyproject's {req}")
    return problems


# Libraries that check their integrations' versions at run time rather than in their
# metadata (transformers 5.24 refuses peft < 0.22 only when a LoRA loads), and the
# integrations of theirs that Easel uses. Their own tables say what they need.
INTEGRATION_TABLES = {
    "transformers": ("peft", "accelerate", "safetensors", "tokenizers", "huggingface-hub"),
    "diffusers": ("peft", "accelerate", "safetensors", "transformers", "huggingface-hub"),
}


def dependency_table(library: str) -> dict[str, str]:
    """``<library>/dependency_versions_table.py``'s ``deps``, read without importing it."""
    try:
        dist = importlib.metadata.distribution(library)
    except importlib.metadata.PackageNotFoundError:
        return {}
    path = Path(str(dist.locate_file(f"{library}/dependency_versions_table.py")))
    if not path.is_file():
        return {}
    tree = ast.parse(path.read_text("utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "deps" for t in node.targets):
            return ast.literal_eval(node.value)
    return {}


def integration_minimums_unmet() -> list[str]:
    """Installed integrations older (or newer) than transformers/diffusers accept."""
    problems = []
    for library, integrations in INTEGRATION_TABLES.items():
        table = dependency_table(library)
        for name in integrations:
            installed = installed_version(name)
            if installed is None or name not in table:
                continue
            req = Requirement(table[name])
            if not req.specifier.contains(Version(installed).public, prereleases=True):
                problems.append(
                    f"{library} {installed_version(library)} needs {req}, this environment has "
                    f"{name} {installed}: exclude that {library} in pyproject.toml and re-lock"
                )
    return problems
