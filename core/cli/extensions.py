"""``easel extensions list|enable|disable|install|remove``."""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "extensions", help="list, enable, disable, install or remove extensions", parents=[common]
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list", help="every extension with its state, load time and error", parents=[common]
    )
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    for action, text in (
        ("enable", "load it from the next start on"),
        ("disable", "keep the files, skip loading"),
    ):
        sub = actions.add_parser(action, help=text, parents=[common])
        sub.add_argument("name")
    install = actions.add_parser(
        "install", help="install from a git URL, a local folder or a zip", parents=[common]
    )
    install.add_argument("source")
    install.add_argument("--name", help="install under this name")
    remove = actions.add_parser(
        "remove", help="delete an installed (non-bundled) extension", parents=[common]
    )
    remove.add_argument("name")
    parser.set_defaults(run=run)


def _print_table(rows: list[dict]) -> None:
    headers = ("name", "version", "source", "enabled", "state", "load_ms", "error")
    table = [
        (
            r["name"], r["version"], r["source"], "yes" if r["enabled"] else "no", r["state"],
            f"{r['load_time_s'] * 1000:.1f}",
            r["error"] or "; ".join(f"{f['hook']}: {f['error']}" for f in r["hook_failures"]),
        )
        for r in rows
    ]  # fmt: skip
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *table, strict=False)]
    widths[-1] = 0  # the error column is free-width
    for row in (headers, *table):
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def run(args: argparse.Namespace) -> int:
    from core.cli.main import settings_from_args
    from core.host import Host
    from core.plugins import installer

    settings = settings_from_args(args)
    host = Host(settings)
    if args.action == "list":
        host.start()
        rows = host.extensions.listing()
        host.stop()
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            _print_table(rows)
        return 0
    if args.action in ("enable", "disable"):
        try:
            host.extensions.set_enabled(args.name, args.action == "enable")
        except KeyError as exc:
            print(f"easel: {exc.args[0]}", file=sys.stderr)
            return 2
        print(f"{args.name}: {args.action}d (takes effect at the next start)")
        return 0
    user_dirs = installer.user_extension_folders(settings)
    if args.action == "install":
        if not settings.install_allowed:
            print("easel: installing extensions is off while listening beyond loopback", file=sys.stderr)
            return 2
        try:
            result = installer.install(args.source, user_dirs[0], name=args.name)
        except installer.InstallError as exc:
            print(f"easel: install refused: {exc}", file=sys.stderr)
            return 1
        reqs = f" with {', '.join(result.requirements)}" if result.requirements else ""
        print(f"installed {result.name} at {result.path}{reqs}")
        return 0
    if args.action == "remove":
        from core.config import BUNDLED_EXTENSION_NAMES

        if args.name in BUNDLED_EXTENSION_NAMES:
            print(
                f"easel: {args.name} is bundled; use 'easel extensions disable {args.name}'", file=sys.stderr
            )
            return 2
        try:  # a name, never a path: installer.removal_target explains
            removed = installer.remove(args.name, user_dirs)
        except installer.InstallError as exc:
            print(f"easel: remove refused: {exc}", file=sys.stderr)
            return 1
        print(f"removed {removed}")
        return 0
    return 2
