"""Translations keyed by the English text, A1111's ``localizations/*.json`` shape.

A localization file is a flat JSON object, English text -> translated text, named after
its language (``zh-CN.json``). The core ships ``ui/localizations/``; every enabled
extension may ship ``<extension folder>/localizations/<lang>.json``. A user extension's
file is untrusted input: a file that is too big, not UTF-8 JSON, not a flat object of
strings, or named after no language is skipped and reported by its path; it never stops
the WebUI. The core's own entries win over an extension's for the same English text.

After the Blocks are built, ``translate_blocks`` turns every plain label, info text,
placeholder, button text, Markdown text and accordion title that has a translation into a
Gradio i18n key (the English text itself), so the browser's language (or the
``ui.language`` setting) picks the translation in the frontend; dropdown/radio choices
and tab titles are looked up by the frontend as they are. Texts the server builds
(messages, progress) go through ``translate``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("easel.ui")

CORE_DIR = Path(__file__).resolve().parent / "localizations"
MAX_FILE_BYTES = 1024 * 1024  # A1111's biggest localization is ~300 KB
MAX_FILES_PER_EXTENSION = 16
MAX_TEXT_CHARS = 4000
LANGUAGE_NAME = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")  # BCP 47, as gr.I18n checks


class LocalizationError(ValueError):
    """A localization file that cannot be used; the message names the file."""


def read_localization(path: Path, max_bytes: int = MAX_FILE_BYTES) -> dict[str, str]:
    """One file's table; raises LocalizationError naming ``path`` and what is wrong."""
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise LocalizationError(f"{path}: not a regular file")
        if size > max_bytes:
            raise LocalizationError(f"{path}: {size} bytes, more than the {max_bytes} allowed")
        with path.open("rb") as handle:
            raw = handle.read(max_bytes + 1)
    except OSError as exc:
        raise LocalizationError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if len(raw) > max_bytes:  # grew between stat and read
        raise LocalizationError(f"{path}: more than the {max_bytes} bytes allowed")
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise LocalizationError(f"{path}: not UTF-8 text") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise LocalizationError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise LocalizationError(f"{path}: must be a JSON object of English text -> translation")
    table: dict[str, str] = {}
    for english, translated in data.items():
        if not isinstance(translated, str):
            raise LocalizationError(
                f"{path}: the translation of {english[:60]!r} is a {type(translated).__name__}, "
                "not a string (the object must be flat: text -> text)"
            )
        if len(english) > MAX_TEXT_CHARS or len(translated) > MAX_TEXT_CHARS:
            raise LocalizationError(
                f"{path}: the entry {english[:60]!r} is longer than {MAX_TEXT_CHARS} characters"
            )
        if english.strip() and translated.strip():
            table[english] = translated
    return table


@dataclass
class Localizations:
    """Every language's table, merged from the core and the extensions, and the files
    that could not be used."""

    tables: dict[str, dict[str, str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    sources: dict[str, list[str]] = field(default_factory=dict)  # language -> files read

    def add_folder(self, folder: Path, owner: str, override: bool = False) -> None:
        """Read ``folder/<lang>.json``; entries already present win unless ``override``."""
        try:
            if not folder.is_dir():
                return
            files = sorted(p for p in folder.iterdir() if p.suffix == ".json")
        except OSError as exc:
            self.problems.append(f"{owner}: {folder}: cannot be listed ({exc.strerror or exc})")
            return
        if len(files) > MAX_FILES_PER_EXTENSION:
            self.problems.append(
                f"{owner}: {folder}: {len(files)} files, only the first {MAX_FILES_PER_EXTENSION} are read"
            )
            files = files[:MAX_FILES_PER_EXTENSION]
        for path in files:
            language = path.stem
            if not LANGUAGE_NAME.match(language):
                self.problems.append(
                    f"{owner}: {path}: the file name is not a language code (like zh-CN.json)"
                )
                continue
            try:
                table = read_localization(path)
            except LocalizationError as exc:
                self.problems.append(f"{owner}: {exc}")
                log.warning("localization skipped: %s: %s", owner, exc)
                continue
            merged = self.tables.setdefault(language, {})
            for english, translated in table.items():
                if override or english not in merged:
                    merged[english] = translated
            self.sources.setdefault(language, []).append(str(path))

    def translate(self, text: str, language: str) -> str:
        """``text`` in ``language``; itself when there is no entry (or for English)."""
        return self.tables.get(language, {}).get(text, text)

    def has(self, text: str) -> bool:
        return any(text in table for table in self.tables.values())

    def frontend_tables(self) -> dict[str, dict[str, str]]:
        """The entries the browser may format: the frontend reads translations as ICU
        messages, so templates with ``{name}`` (server-side messages) stay on the server."""
        return {
            language: {k: v for k, v in table.items() if "{" not in k and "{" not in v}
            for language, table in self.tables.items()
        }


def extension_folder(path: str | None) -> Path | None:
    """The folder of a folder extension (its ``localizations/`` lives there)."""
    if not path:
        return None
    candidate = Path(path)
    if candidate.name == "__init__.py":
        candidate = candidate.parent
    return candidate if candidate.is_dir() else None


def extension_localization_folders(host: Any) -> Iterable[tuple[str, Path]]:
    """(name, localizations folder) of every loaded extension, in load order."""
    try:
        listing = host.extensions.listing()
    except Exception:  # a broken manager must not stop the WebUI
        log.exception("could not list extensions for their localizations")
        return []
    folders = []
    for item in listing:
        if item.get("state") != "loaded" or not item.get("enabled", True):
            continue
        folder = extension_folder(item.get("path"))
        if folder is not None:
            folders.append((str(item["name"]), folder / "localizations"))
    return folders


def load_localizations(host: Any | None, core_dir: Path = CORE_DIR) -> Localizations:
    """The core's tables first, then every loaded extension's (the core wins)."""
    loaded = Localizations()
    loaded.add_folder(core_dir, "core")
    if host is not None:
        for name, folder in extension_localization_folders(host):
            loaded.add_folder(folder, name)
    for problem in loaded.problems:
        log.warning("localization: %s", problem)
    return loaded
