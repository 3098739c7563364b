"""Image files and their A1111 metadata."""

from core.saving.infotext import build_infotext, parse_infotext
from core.saving.writer import read_infotext, save_image

__all__ = ["build_infotext", "parse_infotext", "read_infotext", "save_image"]
