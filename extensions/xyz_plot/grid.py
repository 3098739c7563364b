"""Grid images with A1111's legend layout.

``image_grid`` pastes equal cells row by row on black. ``annotate`` adds A1111's legend:
column labels above the grid, row labels in a left margin three quarters of a cell wide
(only when some row has a label), text of ``(cell width + cell height) // 25`` pixels,
black on white, wrapped to the space it has and shrunk when one word is still too wide,
and ``margin`` pixels between cells. The font is the one Pillow ships
(``ImageFont.load_default(size)``, Aileron): nothing to download, the same everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from PIL import Image, ImageDraw, ImageFont

TEXT = (0, 0, 0)
BACKGROUND = (255, 255, 255)
# the largest grid a plot may make, in megapixels (A1111's img_max_size_mp default)
MAX_GRID_MEGAPIXELS = 200


@dataclass
class Line:
    text: str
    width: int = 0
    height: int = 0


def image_grid(images: list[Image.Image], rows: int) -> Image.Image:
    """``images`` row by row in ``rows`` rows, each cell the first image's size."""
    rows = max(1, rows)
    cols = math.ceil(len(images) / rows)
    width, height = images[0].size
    grid = Image.new("RGB", (cols * width, rows * height), "black")
    for index, image in enumerate(images):
        grid.paste(image.convert("RGB"), (index % cols * width, index // cols * height))
    return grid


@lru_cache(maxsize=64)
def font(size: int) -> Any:
    try:
        return ImageFont.load_default(max(1, size))
    except (OSError, ImportError):  # a Pillow without FreeType: its bitmap font, one size
        return ImageFont.load_default()


def _measure(draw: ImageDraw.ImageDraw, text: str, size: int) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font(size))
    return right - left, bottom - top


def _wrap(draw: ImageDraw.ImageDraw, text: str, size: int, width: int) -> list[Line]:
    """Words joined into lines no wider than ``width`` (a longer word keeps its line)."""
    lines = [""]
    for word in text.split():
        candidate = f"{lines[-1]} {word}".strip()
        if _measure(draw, candidate, size)[0] <= width or not lines[-1]:
            lines[-1] = candidate
        else:
            lines.append(word)
    out = []
    for text_line in lines:
        w, h = _measure(draw, text_line, size) if text_line else (0, 0)
        out.append(Line(text_line, w, h))
    return out


def _block_height(lines: list[Line], spacing: int) -> int:
    filled = [line for line in lines if line.text]
    return sum(line.height for line in filled) + spacing * max(0, len(filled) - 1)


def _draw_block(
    draw: ImageDraw.ImageDraw, x: float, y: float, lines: list[Line], size: int, width: int, spacing: int
) -> None:
    for line in lines:
        if not line.text:
            continue
        line_size = size
        while line_size > 1 and _measure(draw, line.text, line_size)[0] > width:
            line_size -= 1  # one word wider than its space: smaller, as A1111 does
        draw.text((x, y + line.height / 2), line.text, font=font(line_size), fill=TEXT, anchor="mm")
        y += line.height + spacing


def annotate(
    grid: Image.Image, cell_w: int, cell_h: int, col_labels: list[str], row_labels: list[str], margin: int = 0
) -> Image.Image:
    """``grid`` (cells of ``cell_w`` x ``cell_h``) with its column and row labels."""
    cols, rows = grid.width // cell_w, grid.height // cell_h
    if cols != len(col_labels) or rows != len(row_labels):
        raise ValueError(f"{len(col_labels)}x{len(row_labels)} labels for a {cols}x{rows} grid")
    size = max(1, (cell_w + cell_h) // 25)
    spacing = size // 2
    pad_left = cell_w * 3 // 4 if any(label.strip() for label in row_labels) else 0
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1), BACKGROUND))
    col_lines = [_wrap(measure, label, size, cell_w) for label in col_labels]
    row_lines = [_wrap(measure, label, size, pad_left) for label in row_labels]
    col_heights = [_block_height(lines, spacing) for lines in col_lines]
    pad_top = max(col_heights) + spacing * 2 if any(col_heights) else 0
    result = Image.new(
        "RGB",
        (grid.width + pad_left + margin * (cols - 1), grid.height + pad_top + margin * (rows - 1)),
        BACKGROUND,
    )
    for row in range(rows):
        for col in range(cols):
            cell = grid.crop((cell_w * col, cell_h * row, cell_w * (col + 1), cell_h * (row + 1)))
            result.paste(cell, (pad_left + (cell_w + margin) * col, pad_top + (cell_h + margin) * row))
    draw = ImageDraw.Draw(result)
    for col, lines in enumerate(col_lines):
        x = pad_left + (cell_w + margin) * col + cell_w / 2
        _draw_block(draw, x, pad_top / 2 - col_heights[col] / 2, lines, size, cell_w, spacing)
    for row, lines in enumerate(row_lines):
        y = pad_top + (cell_h + margin) * row + cell_h / 2 - _block_height(lines, spacing) / 2
        _draw_block(draw, pad_left / 2, y, lines, size, pad_left, spacing)
    return result


def cell_image(images: list[Image.Image], size: tuple[int, int]) -> Image.Image:
    """What a cell shows: its image; several (batches) as a small grid of them, as
    A1111's ``return_grid``; none (interrupted, skipped) as a black cell."""
    if not images:
        return Image.new("RGB", size, "black")
    if len(images) == 1:
        return images[0]
    return image_grid(images, rows=max(1, round(math.sqrt(len(images)))))
