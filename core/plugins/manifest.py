"""``extension.toml``: an extension's name, version, host API range, requirements, order.

    name = "my_ext"              # = the folder name (see below)
    version = "1.2.0"
    description = "Adds a thing"
    api = ">=1.0,<2"             # host API versions it supports (plugin_api.API_VERSION)
    requirements = ["jieba>=0.42"]
    after = ["zh_prompt"]        # load after these (if present)
    before = []

Every field is optional. The extension's name is always its folder's (or its ``.py``
file's stem, or its entry point's name), as in A1111 and Forge: ``name`` here must match
it; a different one is reported at load time and not used.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

MANIFEST_NAME = "extension.toml"


class ManifestError(ValueError):
    """extension.toml is malformed: the message names the file and the field."""


@dataclass
class Manifest:
    name: str
    version: str = "0.0.0"
    description: str = ""
    api: str = ""  # a PEP 440 specifier set; empty = any
    requirements: list[str] = field(default_factory=list)
    before: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)

    def supports_api(self, api_version: str) -> bool:
        return not self.api or Version(api_version) in SpecifierSet(self.api)


def _string_list(data: dict, key: str, path: Path) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ManifestError(f"{path}: field '{key}' must be a list of strings")
    return value


def read_manifest(path: Path, default_name: str) -> Manifest:
    """Read ``path`` (an extension.toml) or return defaults when it does not exist."""
    if not path.is_file():
        return Manifest(name=default_name)
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: not valid TOML ({exc})") from exc
    for key in ("name", "version", "description", "api"):
        if key in data and not isinstance(data[key], str):
            raise ManifestError(f"{path}: field '{key}' must be a string")
    api = data.get("api", "")
    try:
        SpecifierSet(api)
    except InvalidSpecifier as exc:
        raise ManifestError(f"{path}: field 'api' is not a version range: {api!r}") from exc
    return Manifest(
        name=data.get("name", default_name),
        version=data.get("version", "0.0.0"),
        description=data.get("description", ""),
        api=api,
        requirements=_string_list(data, "requirements", path),
        before=_string_list(data, "before", path),
        after=_string_list(data, "after", path),
    )
