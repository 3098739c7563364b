"""``easel serve``: the WebUI and the REST API on one port (completed by [Queue+API])."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("serve", help="run the WebUI and the REST API", parents=[common])
    parser.add_argument("--host", help="address to bind (default 127.0.0.1; EASEL_HOST)")
    parser.add_argument("--port", type=int, help="port (default 7860; EASEL_PORT)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    raise SystemExit("easel serve: not implemented yet")
