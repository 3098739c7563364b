"""``easel generate``: one prompt in, image files out (completed by [Engine])."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("generate", help="generate images from a prompt", parents=[common])
    parser.add_argument("prompt")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    raise SystemExit("easel generate: not implemented yet")
