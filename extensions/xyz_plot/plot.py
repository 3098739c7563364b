"""The X/Y/Z plot itself: its arguments, the cells' requests, the run and the grids.

Arguments are A1111's (``script_args`` positional, in this order, or by name):
x_type, x_values, x_values_dropdown, y_type, y_values, y_values_dropdown, z_type,
z_values, z_values_dropdown, draw_legend, include_lone_images, include_sub_grids,
no_fixed_seeds, vary_seeds_x, vary_seeds_y, vary_seeds_z, margin_size, csv_mode.

As in A1111: a seed of -1 (the request's, or a value of the Seed axis) is drawn once
before the plot unless ``no_fixed_seeds`` ("Keep -1 for seeds"), so every cell of a row
shares it; "Vary seeds for X" adds the column index to the seed (Y: row x columns, Z:
...). The costliest axis (checkpoint, then VAE) is the outer loop. The result's images
are the grid, then the sub-grids per Z value (``include_sub_grids``), then the cells'
images (``include_lone_images``); every cell is saved as an ordinary image all the same,
and the grid goes to ``outputs/txt2img-grids`` as ``xyz_grid-NNNN-<seed>.png`` with the
first cell's infotext plus ``Script``, ``X Type``, ``X Values`` (``Fixed X Values``)...
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from typing import Any

from extensions.xyz_plot.axes import LORA_TAG, Axis, find_axis, parse_values, values_text
from extensions.xyz_plot.grid import MAX_GRID_MEGAPIXELS, annotate, cell_image, image_grid
from extensions.xyz_plot.infotext import add_fields
from plugin_api.errors import InvalidRequest
from plugin_api.types import GenerationRequest, GenerationResult, ScriptContext

TITLE = "X/Y/Z plot"
NAME = "xyz_plot"
GRID_BASENAME = "xyz_grid"
SEED_RANGE = 2**32 - 1  # the host's random seeds (A1111's range)
MAX_CELLS = 1024
DEFAULTS: dict[str, Any] = {
    "x_type": 1,  # Seed, A1111's default
    "x_values": "",
    "x_values_dropdown": [],
    "y_type": 0,
    "y_values": "",
    "y_values_dropdown": [],
    "z_type": 0,
    "z_values": "",
    "z_values_dropdown": [],
    "draw_legend": True,
    "include_lone_images": False,
    "include_sub_grids": False,
    "no_fixed_seeds": False,
    "vary_seeds_x": False,
    "vary_seeds_y": False,
    "vary_seeds_z": False,
    "margin_size": 0,
    "csv_mode": False,
}
ARG_NAMES = tuple(DEFAULTS)
FIELD = "script_args"


@dataclass
class AxisPlan:
    letter: str  # "x", "y", "z"
    axis: Axis
    values: list[Any]
    text: str  # as the infotext records it

    @property
    def used(self) -> bool:
        return self.axis.kind != "nothing"

    @property
    def labels(self) -> list[str]:
        return [self.axis.format(value) for value in self.values]


@dataclass
class Plot:
    x: AxisPlan
    y: AxisPlan
    z: AxisPlan
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def axes(self) -> tuple[AxisPlan, AxisPlan, AxisPlan]:
        return self.x, self.y, self.z

    @property
    def size(self) -> int:
        return len(self.x.values) * len(self.y.values) * len(self.z.values)

    def index(self, ix: int, iy: int, iz: int) -> int:
        """The cell's place in the grid order (row by row, then the next Z)."""
        return ix + iy * len(self.x.values) + iz * len(self.x.values) * len(self.y.values)

    def order(self) -> list[tuple[int, int, int]]:
        """Cells in the order they run: A1111's, the costliest axis outermost (ties: Z,
        then Y, then X outermost), so a checkpoint loads once per value."""
        cost = {plan.letter: plan.axis.cost for plan in self.axes}
        first, second = "z", "y"
        for letter, (a, b) in {"x": ("y", "z"), "y": ("x", "z"), "z": ("x", "y")}.items():
            if cost[letter] > cost[a] and cost[letter] > cost[b]:
                first, second = letter, (a if cost[a] > cost[b] else b)
                break
        third = ({"x", "y", "z"} - {first, second}).pop()
        counts = {plan.letter: len(plan.values) for plan in self.axes}
        cells = []
        for i1 in range(counts[first]):
            for i2 in range(counts[second]):
                for i3 in range(counts[third]):
                    at = {first: i1, second: i2, third: i3}
                    cells.append((at["x"], at["y"], at["z"]))
        return cells

    def request_for(self, base: GenerationRequest, ix: int, iy: int, iz: int) -> GenerationRequest:
        """The cell's request: the base with each axis' value applied (and its seed varied)."""
        cell = copy.deepcopy(base)
        cell.styles = list(cell.styles or [])
        for plan, at in zip(self.axes, (ix, iy, iz), strict=True):
            apply_value(plan, cell, plan.values[at])
        vary = self.options
        xdim = len(self.x.values) if vary["vary_seeds_x"] else 1
        ydim = len(self.y.values) if vary["vary_seeds_y"] else 1
        if cell.seed != -1:
            cell.seed += (
                (ix if vary["vary_seeds_x"] else 0)
                + (iy * xdim if vary["vary_seeds_y"] else 0)
                + (iz * xdim * ydim if vary["vary_seeds_z"] else 0)
            )
        return cell


def apply_value(plan: AxisPlan, request: GenerationRequest, value: Any) -> None:
    try:
        plan.axis.apply(request, value, plan.values)  # type: ignore[misc]
    except (ValueError, TypeError) as exc:
        raise InvalidRequest(f"{FIELD}.{plan.letter}_values", f"{plan.axis.label} {value!r}: {exc}") from None


def _flag(args: dict[str, Any], name: str) -> bool:
    value = args.get(name, DEFAULTS[name])
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().casefold() in {"true", "false"}:
        return value.strip().casefold() == "true"  # some clients send JS booleans as text
    raise InvalidRequest(f"{FIELD}.{name}", f"expected true or false, got {value!r}")


def read_plot(request: GenerationRequest, args: dict[str, Any]) -> Plot:
    """The plot the arguments describe; InvalidRequest naming ``script_args.<name>``."""
    options = {name: _flag(args, name) for name in DEFAULTS if isinstance(DEFAULTS[name], bool)}
    margin = args.get("margin_size", 0)
    if isinstance(margin, float) and margin.is_integer():
        margin = int(margin)
    if isinstance(margin, bool) or not isinstance(margin, int) or not 0 <= margin <= 500:
        raise InvalidRequest(
            f"{FIELD}.margin_size", f"expected a whole number of pixels from 0 to 500, got {margin!r}"
        )
    options["margin_size"] = margin
    mode = request.mode if request.mode == "txt2img" else "img2img"
    plans = []
    for letter in "xyz":
        axis = find_axis(
            args.get(f"{letter}_type", DEFAULTS[f"{letter}_type"]), mode, f"{FIELD}.{letter}_type"
        )
        if not axis.supported:
            raise InvalidRequest(
                f"{FIELD}.{letter}_type", f"the {axis.label!r} axis is not supported: {axis.why_not}"
            )
        text, dropdown = args.get(f"{letter}_values", ""), args.get(f"{letter}_values_dropdown") or []
        values = parse_values(axis, text, dropdown, options["csv_mode"], f"{FIELD}.{letter}_values")
        plans.append(AxisPlan(letter, axis, values, values_text(axis, text, dropdown, options["csv_mode"])))
    plot = Plot(*plans, options=options)
    if plot.size > MAX_CELLS:
        raise InvalidRequest(FIELD, f"{plot.size} cells; a plot may have at most {MAX_CELLS}")
    return plot


def fix_seeds(plot: Plot, request: GenerationRequest) -> GenerationRequest:
    """A1111's fixed seeds: -1 drawn once, for the request and the Seed axis' values."""
    if plot.options["no_fixed_seeds"]:
        return request
    request = copy.copy(request)
    if request.seed == -1:
        request.seed = random.randrange(SEED_RANGE)
    for plan in plot.axes:
        if plan.axis.label == "Seed":
            plan.values = [random.randrange(SEED_RANGE) if v == -1 else v for v in plan.values]
    return request


def validate(request: GenerationRequest, args: dict[str, Any], ctx: ScriptContext) -> None:
    """Refuse before anything is queued: bad arguments, a Prompt S/R word that is not in
    the prompt, an axis value the host refuses (unknown sampler or checkpoint...), a grid
    too large."""
    plot = read_plot(request, args)
    for plan in plot.axes:
        if (
            plan.axis.label == "Prompt S/R"
            and plan.values[0] not in request.prompt + "\n" + request.negative_prompt
        ):
            raise InvalidRequest(
                f"{FIELD}.{plan.letter}_values",
                f"Prompt S/R did not find {plan.values[0]!r} in the prompt or the negative prompt",
            )
        if plan.axis.label == "LoRA weight" and not LORA_TAG.search(request.prompt):
            raise InvalidRequest(
                f"{FIELD}.{plan.letter}_values", "LoRA weight needs a <lora:name:weight> tag in the prompt"
            )
        # each value on its own first, so a refusal names the axis it came from
        for value in plan.values if plan.used else []:
            cell = copy.deepcopy(request)
            apply_value(plan, cell, value)
            try:
                ctx.check(cell)
            except InvalidRequest as exc:
                raise InvalidRequest(
                    f"{FIELD}.{plan.letter}_values",
                    f"{plan.axis.label} {value!r}: {exc.field}: {exc.message}",
                ) from None
    largest = 0
    for ix, iy, iz in plot.order():
        cell = plot.request_for(request, ix, iy, iz)
        try:
            checked = ctx.check(cell)
        except InvalidRequest as exc:
            labels = ", ".join(p.labels[i] for p, i in zip(plot.axes, (ix, iy, iz), strict=True) if p.used)
            raise InvalidRequest(FIELD, f"cell ({labels}): {exc.field}: {exc.message}") from None
        largest = max(largest, (checked.width or 0) * (checked.height or 0))
    megapixels = plot.size * largest * max(1, request.batch_size * request.batch_count) / 1e6
    if megapixels > MAX_GRID_MEGAPIXELS:
        raise InvalidRequest(
            FIELD, f"the grid would have {megapixels:.0f} megapixels; at most {MAX_GRID_MEGAPIXELS}"
        )


def grid_fields(plot: Plot, with_z: bool) -> dict[str, str]:
    """The infotext fields A1111 adds to a grid's (the sub-grids' lack Z)."""
    fields = {"Script": TITLE}
    for plan in plot.axes if with_z else plot.axes[:2]:
        if not plan.used:
            continue
        letter = plan.letter.upper()
        fields[f"{letter} Type"] = plan.axis.label
        fields[f"{letter} Values"] = plan.text
        if plan.axis.label == "Seed" and not plot.options["no_fixed_seeds"]:
            fields[f"Fixed {letter} Values"] = ", ".join(str(v) for v in plan.values)
    return fields


def run(request: GenerationRequest, args: dict[str, Any], ctx: ScriptContext) -> GenerationResult:
    plot = read_plot(request, args)
    base = fix_seeds(plot, request)
    cells: dict[int, GenerationResult] = {}
    order = plot.order()
    for part, (ix, iy, iz) in enumerate(order):
        if ctx.is_cancelled():
            break
        cells[plot.index(ix, iy, iz)] = ctx.generate(
            plot.request_for(base, ix, iy, iz), part=part, parts=len(order)
        )
    return combine(plot, base, cells, ctx)


def combine(
    plot: Plot, base: GenerationRequest, cells: dict[int, GenerationResult], ctx: ScriptContext
) -> GenerationResult:
    """The grids and the result clients get (see the module's docstring)."""
    made = [cells[i] for i in sorted(cells) if cells[i].images]
    interrupted = ctx.is_cancelled() or any(c.interrupted for c in cells.values())
    result = GenerationResult(images=[], seeds=[], infotexts=[], interrupted=interrupted)
    result.prompt, result.negative_prompt = base.prompt, base.negative_prompt
    result.original_prompt, result.original_negative_prompt = base.prompt, base.negative_prompt
    result.warnings = list(dict.fromkeys(w for c in cells.values() for w in c.warnings))
    result.elapsed_s = sum(c.elapsed_s for c in cells.values())
    if not made:  # interrupted before the first cell finished
        return result
    first = made[0]
    result.parameters = dict(first.parameters)
    size = cell_image(first.images, first.images[0].size).size
    per_cell = [
        cell_image(cells[i].images if i in cells else [], size) for i in range(plot.size)
    ]  # grid order
    nx, ny, nz = (len(p.values) for p in plot.axes)
    sub_grids, sub_infos, sub_seeds = [], [], []
    for iz in range(nz):
        chunk = per_cell[iz * nx * ny : (iz + 1) * nx * ny]
        grid = image_grid(chunk, rows=ny)
        if plot.options["draw_legend"]:
            grid = annotate(grid, size[0], size[1], plot.x.labels, plot.y.labels, plot.options["margin_size"])
        sub_grids.append(grid)
        # A1111: a grid's infotext is its first cell's (the first made, when that one is not)
        source = next(
            (cells[i] for i in range(iz * nx * ny, (iz + 1) * nx * ny) if i in cells and cells[i].images),
            first,
        )
        sub_infos.append(source.infotexts[0])
        sub_seeds.append(source.seeds[0])
    main = image_grid(sub_grids, rows=1) if nz > 1 else sub_grids[0]
    if plot.options["draw_legend"] and plot.z.used:  # the Z values above their sub-grids
        main = annotate(main, sub_grids[0].width, sub_grids[0].height, plot.z.labels, [""])
    grids = [(main, sub_infos[0], sub_seeds[0], grid_fields(plot, with_z=True))]
    if plot.options["include_sub_grids"] and nz > 1:
        grids += [
            (g, i, s, grid_fields(plot, with_z=False))
            for g, i, s in zip(sub_grids, sub_infos, sub_seeds, strict=True)
        ]
    paths: list[str | None] = []
    saved_grids = []
    for image, infotext, seed, fields in grids:
        infotext = add_fields(infotext, fields)
        path = ctx.save_grid(image, infotext, seed, GRID_BASENAME)
        paths.append(path)
        saved_grids.append(path)
        result.images.append(image)
        result.seeds.append(seed)
        result.infotexts.append(infotext)
        result.prompts.append(base.prompt)
        result.negative_prompts.append(base.negative_prompt)
    if plot.options["include_lone_images"]:
        for i in sorted(cells):
            cell = cells[i]
            result.images.extend(cell.images)
            result.seeds.extend(cell.seeds)
            result.infotexts.extend(cell.infotexts)
            result.prompts.extend(cell.prompts or [cell.prompt] * len(cell.images))
            result.negative_prompts.extend(cell.negative_prompts or [cell.negative_prompt] * len(cell.images))
            paths.extend(cell.paths if len(cell.paths) == len(cell.images) else [None] * len(cell.images))
    # paths are all or nothing (save_images false: the host keeps the images for the caller)
    result.paths = [p for p in paths if p] if all(paths) else []
    result.results[NAME] = {
        "grid": saved_grids[0],
        "sub_grids": saved_grids[1:],
        "axes": {
            p.letter: {
                "type": p.axis.label,
                "values": [list(v) if isinstance(v, tuple) else v for v in p.values],
            }
            for p in plot.axes
            if p.used
        },
        "cells": [
            {
                "x": i % nx,
                "y": i // nx % ny,
                "z": i // (nx * ny),
                "seeds": list(cells[i].seeds),
                "paths": list(cells[i].paths),
                "infotexts": list(cells[i].infotexts),
            }
            for i in sorted(cells)
        ],
    }
    return result
