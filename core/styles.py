"""A1111's prompt styles: ``styles.csv`` in the data folder (columns name, prompt,
negative_prompt), applied by name through the request's ``styles`` field.

A style's text replaces ``{prompt}`` with the user's prompt; a style without the
placeholder is appended after a comma, as A1111's ``apply_styles_to_prompt`` does. The
file is read on every use (it is small), so edits apply without a restart, as A1111's
"refresh styles" would. A style name the file does not have is skipped, as A1111 skips
it, and the result carries a warning naming it.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

from core.errors import RequestError

log = logging.getLogger("easel.styles")

STYLES_FILE = "styles.csv"
PLACEHOLDER = "{prompt}"
MAX_STYLES_BYTES = 4 * 1024 * 1024  # a styles file is text for people; refuse a huge one


@dataclass(frozen=True)
class PromptStyle:
    name: str
    prompt: str
    negative_prompt: str

    def a1111(self) -> dict[str, str]:
        """An entry of /sdapi/v1/prompt-styles."""
        return {"name": self.name, "prompt": self.prompt, "negative_prompt": self.negative_prompt}


def styles_path(data_dir: Path) -> Path:
    return Path(data_dir) / STYLES_FILE


def load_styles(path: Path) -> dict[str, PromptStyle]:
    """The styles in ``path`` by name (none when the file does not exist). A1111 writes
    the file with a UTF-8 BOM ("utf-8-sig") and may leave out the negative column."""
    if not path.is_file():
        return {}
    if path.stat().st_size > MAX_STYLES_BYTES:
        log.warning("%s is larger than %d bytes: styles not loaded", path, MAX_STYLES_BYTES)
        return {}
    styles: dict[str, PromptStyle] = {}
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle, skipinitialspace=True):
            name = (row.get("name") or "").strip()
            if not name:
                continue
            styles[name] = PromptStyle(name, row.get("prompt") or "", row.get("negative_prompt") or "")
    return styles


def merge(style_text: str, prompt: str) -> str:
    """One style applied to one prompt (A1111's ``merge_prompts``)."""
    if PLACEHOLDER in style_text:
        return style_text.replace(PLACEHOLDER, prompt)
    if not prompt.strip():
        return style_text
    if not style_text.strip():
        return prompt
    return f"{prompt}, {style_text}"


def apply_styles(prompt: str, negative: str, names: list[str], path: Path) -> tuple[str, str, list[str]]:
    """``prompt`` and ``negative`` with the named styles applied in order, and the names
    the file does not have. Those are skipped, as A1111 skips them (clients send their
    own placeholders: the AIYA Discord bot sends ``["None"]`` when no style is chosen);
    the caller reports them as warnings, so the skip is never silent."""
    if not names:
        return prompt, negative, []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise RequestError("styles", "must be a list of style names")
    styles = load_styles(path)
    missing: list[str] = []
    for name in names:
        style = styles.get(name)
        if style is None:
            missing.append(name)
            continue
        prompt = merge(style.prompt, prompt)
        negative = merge(style.negative_prompt, negative)
    return prompt, negative, missing
