"""``easel png-info FILE``: print an image's generation parameters (completed by [Engine])."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "png-info", help="read generation parameters from an image", parents=[common]
    )
    parser.add_argument("file")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    raise SystemExit("easel png-info: not implemented yet")
