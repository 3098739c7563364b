"""Find extensions: folders and single ``.py`` files in extension folders, and installed
distributions with an ``easel.extensions`` entry point. Finding imports nothing."""

from __future__ import annotations

import importlib.metadata
import logging
from dataclasses import dataclass
from pathlib import Path

from core.plugins.manifest import MANIFEST_NAME, Manifest, ManifestError, read_manifest

log = logging.getLogger("easel.extensions")

ENTRY_POINT_GROUP = "easel.extensions"
DISABLED_SUFFIX = ".disabled"  # ComfyUI's convention: `foo.disabled/` is skipped


@dataclass
class Candidate:
    """An extension that was found but not imported yet."""

    name: str
    source: str  # "bundled", "user" or "entry-point"
    path: Path | None  # folder or .py file; None for entry points
    manifest: Manifest
    entry_point: importlib.metadata.EntryPoint | None = None
    error: str | None = None  # set when the manifest could not be read


def _candidate_from_path(path: Path, source: str) -> Candidate | None:
    if path.name.startswith((".", "_")) or path.name.endswith(DISABLED_SUFFIX):
        return None
    if path.is_dir():
        if not (path / "__init__.py").is_file():
            return None
        name, manifest_path = path.name, path / MANIFEST_NAME
    elif path.suffix == ".py":
        name, manifest_path = path.stem, path.with_suffix(".toml")
    else:
        return None
    try:
        manifest = read_manifest(manifest_path, default_name=name)
    except ManifestError as exc:
        return Candidate(name, source, path, Manifest(name=name), error=str(exc))
    # The extension's name is its folder's (or file's), as in A1111 and Forge: it keys
    # extension_args, ctx.state/results, settings and load order. A different ``name`` in
    # extension.toml cannot rename it; say so rather than ignore it silently.
    if manifest.name != name:
        log.warning(
            "%s: name %r in %s is not used: an extension is named after its folder (%r)",
            path, manifest.name, manifest_path.name, name,
        )  # fmt: skip
    manifest.name = name
    return Candidate(name, source, path, manifest)


def find_in_folder(folder: Path, source: str) -> list[Candidate]:
    """Extensions in one folder, in name order (a stable load order)."""
    if not folder.is_dir():
        return []
    found = (_candidate_from_path(p, source) for p in sorted(folder.iterdir()))
    return [c for c in found if c is not None]


def find_entry_points() -> list[Candidate]:
    found = []
    for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        version = ep.dist.version if ep.dist is not None else "0.0.0"
        manifest = Manifest(name=ep.name, version=version)
        found.append(Candidate(ep.name, "entry-point", None, manifest, entry_point=ep))
    return found


def order_by_constraints(candidates: list[Candidate]) -> list[Candidate]:
    """Honour ``before``/``after`` from the manifests; otherwise keep the found order.

    A cycle cannot be honoured: the candidates in it keep their found order.
    """
    names = [c.name for c in candidates]
    after: dict[str, set[str]] = {n: set() for n in names}
    for c in candidates:
        after[c.name] |= {n for n in c.manifest.after if n in after and n != c.name}
        for n in c.manifest.before:
            if n in after and n != c.name:
                after[n].add(c.name)
    ordered: list[Candidate] = []
    placed: set[str] = set()
    remaining = list(candidates)
    while remaining:
        ready = [c for c in remaining if after[c.name] <= placed]
        nxt = ready[0] if ready else remaining[0]  # a cycle: fall back to found order
        ordered.append(nxt)
        placed.add(nxt.name)
        remaining.remove(nxt)
    return ordered
