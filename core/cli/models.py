"""``easel models``: list the models Easel can load (name, family, format, precision, size, hash)."""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("models", help="list models", parents=[common])
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(run=run)


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def prediction_cell(info) -> str:
    """ "v (sd-2-1.yaml: parameterization v)": what the model predicts and why (see
    core/models/prediction.py); "-" for flow-matching models."""
    if info.prediction is None:
        return "-"
    return f"{info.prediction.label} ({info.prediction.source})"


def family_cell(info) -> str:
    """The family, plus "sd2" for an SD 2.x checkpoint (the sd15 family serves both) and
    "inpainting" for an inpainting one (9-channel UNet): "sd15/sd2-inpainting"."""
    cell = f"{info.family}/sd2" if info.variant.startswith("sd2") else info.family
    if info.variant in ("flux-dev", "flux-schnell"):
        cell = f"{info.family}/{info.variant.removeprefix('flux-')}"  # flux/dev, flux/schnell
    if info.variant.startswith("flux2-"):
        cell = f"{info.family}/{info.variant.removeprefix('flux2-')}"  # flux2/klein-4b, flux2/klein-9b-base
    if info.inpainting:
        cell += "-inpainting" if cell.endswith("sd2") else "/inpainting"
    return cell


def run(args: argparse.Namespace) -> int:
    from core.cli.main import settings_from_args
    from core.models.manager import ModelManager

    manager = ModelManager(settings_from_args(args))
    infos = manager.list()
    if args.json:
        print(json.dumps({"models": [i.as_dict() for i in infos], "problems": manager.problems}, indent=2))
        return 0
    rows = [("NAME", "FAMILY", "FORMAT", "PRECISION", "SIZE", "HASH", "PREDICTION")]
    rows += [
        (i.name, family_cell(i), i.format, i.precision or "-", human_size(i.size), i.hash, prediction_cell(i))
        for i in infos
    ]
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    default = manager.default_name()
    for index, row in enumerate(rows):
        mark = " *" if index and row[0] == default else ""
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + mark)
    if not infos:
        print("(no models: put checkpoints in <models-dir>/Stable-diffusion)")
    for name, problem in manager.problems.items():
        print(f"skipped {name}: {problem}", file=sys.stderr)
    return 0
