"""``easel``: one entry point, one module per sub-command.

Each sub-command module has ``add_parser(subparsers, common)`` and ``run(args) -> int``.
Heavy imports (torch, diffusers, gradio) happen inside ``run`` so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from pathlib import Path

from core import __version__
from core.config import MEMORY_MODE_CHOICES, Settings
from core.errors import SettingError

SUBCOMMANDS = ("serve", "worker", "generate", "models", "extensions", "png_info", "doctor")


def common_options() -> argparse.ArgumentParser:
    """Options every sub-command understands (each also has an EASEL_* variable)."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("host options")
    group.add_argument("--data-dir", type=Path, help="queue database, settings and outputs (EASEL_DATA_DIR)")
    group.add_argument("--models-dir", type=Path, help="models folder in A1111 layout (EASEL_MODELS_DIR)")
    group.add_argument(
        "--extensions-dir",
        type=Path,
        action="append",
        metavar="DIR",
        help="another extensions folder; repeatable (EASEL_EXTENSIONS_DIR, ':'-separated)",
    )
    group.add_argument("--safe-mode", action="store_true", default=None, help="load bundled extensions only")
    group.add_argument(
        "--disable", action="append", metavar="NAME", help="do not load this extension; repeatable"
    )
    group.add_argument(
        "--allow-pickle",
        action="store_true",
        default=None,
        help="allow pickle checkpoints (.ckpt/.pt/.bin), loaded with weights_only=True (EASEL_ALLOW_PICKLE)",
    )
    group.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (EASEL_DEVICE)")
    group.add_argument(
        "--memory-mode",
        choices=MEMORY_MODE_CHOICES,
        help="where the weights live while generating: auto picks from free device memory (EASEL_MEMORY_MODE)",
    )
    group.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return common


def settings_from_args(args: argparse.Namespace, **extra: object) -> Settings:
    return Settings.from_env(
        data_dir=getattr(args, "data_dir", None),
        models_dir=getattr(args, "models_dir", None),
        extension_dirs=getattr(args, "extensions_dir", None),
        safe_mode=getattr(args, "safe_mode", None),
        disabled_extensions=getattr(args, "disable", None),
        allow_pickle=getattr(args, "allow_pickle", None),
        device=getattr(args, "device", None),
        memory_mode=getattr(args, "memory_mode", None),
        **extra,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="easel", description="Easel: a local, plugin-based text-to-image host."
    )
    parser.add_argument("--version", action="version", version=f"easel {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = common_options()
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"core.cli.{name}")
        module.add_parser(subparsers, common)
    return parser


def run_command(argv: list[str] | None) -> tuple[int, argparse.Namespace | None]:
    """Parse and run one command: its exit code, and its arguments (None: nothing ran)."""
    # Nothing may be downloaded at run time: keep the Hub libraries offline.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2, None
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise in a CLI
    try:
        return int(args.run(args) or 0), args
    except SettingError as exc:  # a bad flag or EASEL_* value: one line, like argparse's errors
        print(f"easel: error: {exc}", file=sys.stderr)
        return 2, args


def main(argv: list[str] | None = None) -> int:
    """Run one command and return its exit code; the process goes on (tests call this)."""
    return run_command(argv)[0]


def console_main() -> None:
    """The ``easel`` command (and ``python -m core``): one command, then the process ends.

    A command that sets ``exit_at_once`` (``generate``) has written its files atomically and
    stopped the host when it returns; the interpreter's own finalization of torch and its
    modules would add ~3 s before the shell prompt comes back, doing nothing for us.
    """
    code, args = run_command(sys.argv[1:])
    if args is not None and getattr(args, "exit_at_once", False):
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    console_main()
