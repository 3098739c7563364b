"""Model families: one adapter per family behind ``core.families.base.FamilyAdapter``."""

from __future__ import annotations

from core.families.base import Conditioning, FamilyAdapter, FamilyDefaults

__all__ = ["Conditioning", "FamilyAdapter", "FamilyDefaults", "all_families", "get_family"]


def all_families() -> list[FamilyAdapter]:
    """Every known family, in detection order (most specific first)."""
    from core.families.chroma import FAMILY as CHROMA
    from core.families.flux import FAMILY as FLUX
    from core.families.flux2 import FAMILY as FLUX2
    from core.families.qwen_image import FAMILY as QWEN_IMAGE
    from core.families.sd15 import FAMILY as SD15
    from core.families.sdxl import FAMILY as SDXL
    from core.families.zimage import FAMILY as ZIMAGE

    return [QWEN_IMAGE, CHROMA, FLUX2, FLUX, ZIMAGE, SDXL, SD15]


def get_family(name: str) -> FamilyAdapter:
    for family in all_families():
        if family.name == name:
            return family
    raise KeyError(f"unknown model family {name!r}")
