"""A GenerationResult as stored in the job record (JSON), and unsaved images as files."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

from core.results import GenerationResult
from core.saving.writer import give_normal_mode


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "save") and hasattr(value, "size"):  # an image: not in the DB
        return None
    return str(value)


def result_to_json(result: GenerationResult, paths: list[str], saved: bool) -> dict[str, Any]:
    return {
        "paths": [str(p) for p in paths],
        "saved": saved,
        "seeds": [int(s) for s in result.seeds],
        "infotexts": list(result.infotexts),
        "parameters": _jsonable(result.parameters),
        "prompt": result.prompt,
        "negative_prompt": result.negative_prompt,
        "original_prompt": result.original_prompt,
        "original_negative_prompt": result.original_negative_prompt,
        # per image, what was encoded (wildcards: each its own); ctx.results by extension
        "prompts": list(result.prompts),
        "negative_prompts": list(result.negative_prompts),
        "extra_params": _jsonable(result.extra_params),
        "results": _jsonable(result.results),
        "warnings": list(result.warnings),
        "interrupted": bool(result.interrupted),
        "elapsed_s": round(float(result.elapsed_s), 3),
    }


def write_transient_images(folder: Path, images: list[Any], infotexts: list[str]) -> list[str]:
    """Write PNGs (with the A1111 ``parameters`` chunk) atomically: temp file + rename."""
    from PIL import PngImagePlugin

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, image in enumerate(images):
        info = PngImagePlugin.PngInfo()
        if index < len(infotexts) and infotexts[index]:
            info.add_text("parameters", infotexts[index])
        target = folder / f"{index:05d}.png"
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".png", dir=folder)
        try:
            give_normal_mode(fd)
            with os.fdopen(fd, "wb") as handle:
                image.save(handle, format="PNG", pnginfo=info)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        paths.append(str(target))
    return paths
