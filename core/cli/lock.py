"""``python -m core.cli.lock check|inputs``: the Makefile's side of ``requirements.lock``.

``check`` (run by ``make setup`` and ``make test``) fails, naming each package, when the lock
and pyproject disagree, when this environment differs from the lock, or when ``pip check``
finds a broken requirement. ``inputs`` prints what ``make lock`` resolves besides
pyproject's dependencies: the build system (Easel is installed without build isolation,
with the locked setuptools), pip itself and the torch pair.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tomllib
from pathlib import Path

PYPROJECT_PATH = Path(__file__).resolve().parents[2] / "pyproject.toml"


def lock_inputs(torch_pair: list[str]) -> list[str]:
    """Runs in a bare venv before anything is installed, so it needs only the stdlib."""
    build = tomllib.loads(PYPROJECT_PATH.read_text("utf-8"))["build-system"]["requires"]
    return [*build, "pip", *torch_pair]


def pip_check() -> list[str]:
    proc = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    if proc.returncode == 0:
        return []
    return [f"pip check: {line}" for line in proc.stdout.strip().splitlines() if line.strip()]


def check() -> list[str]:
    from core import lockfile  # needs packaging, which a bare venv lacks

    problems = list(lockfile.pyproject_disagreements())
    for mismatch in lockfile.environment_mismatches():
        found = mismatch.installed or "not installed"
        problems.append(f"{mismatch.name}: the lock has {mismatch.locked}, this environment {found}")
    problems += pip_check()
    # A range in pyproject cannot say "transformers 5.24 needs peft 0.22": ask transformers.
    problems += lockfile.integration_minimums_unmet()
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.cli.lock")
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("check", help="the lock, pyproject and this environment agree")
    inputs = actions.add_parser("inputs", help="print the extra requirements `make lock` resolves")
    inputs.add_argument("torch_pair", nargs="*", help="e.g. torch==2.14.1 torchvision==0.29.1")
    args = parser.parse_args(argv)
    if args.action == "inputs":
        print("\n".join(lock_inputs(args.torch_pair)))
        return 0
    problems = check()
    for problem in problems:
        print(f"lock check: {problem}", file=sys.stderr)
    if problems:
        print(
            f"lock check: {len(problems)} problem(s). `make setup` installs the lock; "
            "after changing pyproject.toml run `make lock` (README: Dependencies).",
            file=sys.stderr,
        )
        return 1
    print("lock check: requirements.lock, pyproject.toml and this environment agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
