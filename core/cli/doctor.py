"""``easel doctor``: what a bug report needs, in one paste (A1111's "sysinfo" is the anchor).

Easel and its commit, Python and the platform, torch with its CUDA/cuDNN build and every
GPU's name and free memory, the versions of the libraries that decide what an image looks
like, each compared with ``requirements.lock``, and the folders and extensions in use.
Exit status 1 when the environment differs from the lock, so scripts can check it too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from typing import Any

from core import __version__

# The libraries whose versions change images, loading or the UI; the first to ask for.
REPORTED_PACKAGES = (
    "torch", "torchvision", "diffusers", "transformers", "peft", "accelerate", "safetensors",
    "tokenizers", "huggingface-hub", "gradio", "fastapi", "uvicorn", "numpy", "pillow",
    "spandrel", "controlnet-aux", "xformers",
)  # fmt: skip


def add_parser(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "doctor", help="versions, GPUs and lock status for a bug report", parents=[common]
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--no-extensions", action="store_true", help="do not load extensions to list them")
    parser.set_defaults(run=run)


def git_commit() -> str | None:
    from core import lockfile

    try:
        proc = subprocess.run(
            ["git", "-C", str(lockfile.CHECKOUT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() or None


def torch_report() -> dict[str, Any]:
    import torch

    report: dict[str, Any] = {
        "version": torch.__version__,
        "cuda_build": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "mps_available": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
        "threads": torch.get_num_threads(),
        "gpus": [],
    }
    if report["cuda_available"]:
        for index in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(index)
            props = torch.cuda.get_device_properties(index)
            report["gpus"].append(
                {
                    "index": index,
                    "name": props.name,
                    "capability": f"{props.major}.{props.minor}",
                    "free_gib": round(free / 2**30, 2),
                    "total_gib": round(total / 2**30, 2),
                }
            )
    return report


def package_report() -> tuple[list[dict[str, Any]], str | None]:
    """Each reported package (and every other locked one that differs) against the lock."""
    from core import lockfile

    try:
        locked = lockfile.locked_versions()
        lock_error = None
    except lockfile.LockError as exc:
        locked, lock_error = {}, str(exc)
    rows = []
    for name in REPORTED_PACKAGES:
        installed = lockfile.installed_version(name)
        rows.append({"name": name, "installed": installed, "locked": locked.get(name)})
    reported = set(REPORTED_PACKAGES)
    for mismatch in [] if lock_error else lockfile.environment_mismatches():
        if mismatch.name not in reported:
            rows.append({"name": mismatch.name, "installed": mismatch.installed, "locked": mismatch.locked})
    for row in rows:
        if row["locked"] is None:
            row["status"] = "not locked" if row["installed"] else "not installed"
        elif row["installed"] is None:
            row["status"] = "MISSING"
        else:
            row["status"] = "ok" if lockfile.same_release(row["installed"], row["locked"]) else "DIFFERS"
    return rows, lock_error


def memory_report() -> dict[str, Any]:
    try:
        import psutil
    except ImportError:
        return {}
    memory = psutil.virtual_memory()
    return {"total_gib": round(memory.total / 2**30, 1), "available_gib": round(memory.available / 2**30, 1)}


def easel_environment() -> dict[str, str]:
    """The EASEL_* variables, secrets left out: a report is pasted into public trackers."""
    secret_words = ("AUTH", "PASS", "TOKEN", "SECRET", "KEY")
    return {
        key: "(set, not shown)" if any(word in key for word in secret_words) else value
        for key, value in sorted(os.environ.items())
        if key.startswith("EASEL_")
    }


def collect(args: argparse.Namespace) -> dict[str, Any]:
    # Imported here, like every sub-command's heavy work, so `easel --help` stays instant.
    from core import lockfile
    from core.cli.main import settings_from_args

    settings = settings_from_args(args)
    packages, lock_error = package_report()
    report: dict[str, Any] = {
        "easel": {"version": __version__, "commit": git_commit(), "checkout": str(lockfile.CHECKOUT)},
        "python": {"version": platform.python_version(), "executable": sys.executable},
        "platform": {"system": platform.platform(), "machine": platform.machine(), "cpus": os.cpu_count()},
        "memory": memory_report(),
        "torch": torch_report(),
        "packages": packages,
        "lock": {
            "path": str(lockfile.LOCK_PATH),  # read now: tests point it elsewhere
            "error": lock_error,
            "matches": lock_error is None
            and all(p["status"] in ("ok", "not locked", "not installed") for p in packages),
            "integration_problems": lockfile.integration_minimums_unmet(),
        },
        "settings": {
            "data_dir": str(settings.data_dir),
            "models_dir": str(settings.models_dir),
            "device": settings.device,
            "memory_mode": settings.memory_mode,
        },
        "environment": easel_environment(),
    }
    if not args.no_extensions:
        from core.host import Host

        host = Host(settings)
        host.start()
        report["extensions"] = [
            {key: row[key] for key in ("name", "version", "source", "state", "error")}
            for row in host.extensions.listing()
        ]
        host.stop()
    return report


def print_report(report: dict[str, Any]) -> None:
    easel, torch_info, lock = report["easel"], report["torch"], report["lock"]
    print(f"Easel      {easel['version']} (commit {easel['commit'] or 'unknown'}) at {easel['checkout']}")
    print(f"Python     {report['python']['version']} ({report['python']['executable']})")
    platform_info = report["platform"]
    memory = report["memory"]
    ram = f", RAM {memory['available_gib']}/{memory['total_gib']} GiB free" if memory else ""
    print(f"Platform   {platform_info['system']}, {platform_info['cpus']} CPUs{ram}")
    cuda = f"CUDA build {torch_info['cuda_build']}" if torch_info["cuda_build"] else "CPU build"
    print(
        f"torch      {torch_info['version']} ({cuda}, cuDNN {torch_info['cudnn']}, {torch_info['threads']} threads)"
    )
    if not torch_info["gpus"]:
        print("GPUs       none visible" + (" (MPS available)" if torch_info["mps_available"] else ""))
    for gpu in torch_info["gpus"]:
        print(
            f"GPU {gpu['index']}      {gpu['name']} (sm {gpu['capability']}), "
            f"{gpu['free_gib']}/{gpu['total_gib']} GiB free"
        )
    print()
    print(f"{'package':<18}{'installed':<22}{'locked':<16}status")
    for row in report["packages"]:
        print(f"{row['name']:<18}{row['installed'] or '-':<22}{row['locked'] or '-':<16}{row['status']}")
    print()
    if lock["error"]:
        print(f"Lock       {lock['error']}")
    else:
        verdict = (
            "this environment matches it" if lock["matches"] else "this environment DIFFERS (make setup)"
        )
        print(f"Lock       {lock['path']}: {verdict}")
    for problem in lock["integration_problems"]:
        print(f"           {problem}")
    settings = report["settings"]
    print(f"Data       {settings['data_dir']}")
    print(f"Models     {settings['models_dir']}")
    print(f"Device     {settings['device']}, memory mode {settings['memory_mode']}")
    for key, value in report["environment"].items():
        print(f"           {key}={value}")
    for row in report.get("extensions", []):
        error = f"  {row['error']}" if row["error"] else ""
        print(f"Extension  {row['name']} {row['version'] or ''} ({row['source']}, {row['state']}){error}")


def run(args: argparse.Namespace) -> int:
    report = collect(args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    healthy = report["lock"]["matches"] and not report["lock"]["integration_problems"]
    return 0 if healthy else 1
