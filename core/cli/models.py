"""``easel models``: list the models Easel can load (completed by [Engine])."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("models", help="list models", parents=[common])
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    raise SystemExit("easel models: not implemented yet")
