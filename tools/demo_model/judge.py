"""Deterministic analyzer for demo-model images (the classification lives in the bundled
``interrogate`` extension, so the host ships it; this is its command line).

Given an image (PIL image or path) it reports, in the vocabulary of ``scenes``:
background colour, foreground colour, shape and position of the largest foreground region.

    python -m tools.demo_model.judge IMAGE [IMAGE ...]
"""

from __future__ import annotations

import json
import sys

from extensions.interrogate.demo_world import (  # noqa: F401  (re-exported for tools)
    Judgement,
    _largest_component,
    classify_position,
    classify_shape,
    judge,
    nearest_color,
)


def main(argv: list[str] | None = None) -> int:
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print(__doc__)
        return 2
    for p in paths:
        print(json.dumps({"image": str(p), **judge(p).as_dict()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
