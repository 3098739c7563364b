"""``easel png-info FILE``: print an image's generation parameters (A1111 infotext)."""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "png-info", help="read generation parameters from an image", parents=[common]
    )
    parser.add_argument("file")
    parser.add_argument("--json", action="store_true", help="print the parsed fields as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from PIL import UnidentifiedImageError

    from core.saving import parse_infotext, read_infotext

    try:
        text = read_infotext(args.file)
    except (OSError, UnidentifiedImageError) as exc:
        print(f"easel png-info: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    if text is None:
        print(f"easel png-info: {args.file} has no generation parameters", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(parse_infotext(text), indent=2, ensure_ascii=False))
    else:
        print(text)
    return 0
