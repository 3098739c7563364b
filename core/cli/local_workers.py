"""``easel serve --workers N``: N ``easel worker`` processes beside the API node.

Processes, not threads: each has its own engine, model cache and device, and a crash (or
an out-of-memory kill) takes one worker, not the server. They get the server's data folder,
models folder, extension flags and queue URL, and one GPU each when there are enough.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time

log = logging.getLogger("easel.serve")

DRAIN_TIMEOUT_S = 60.0  # a worker finishing a long job on shutdown gets this long


def worker_devices(count: int, device: str) -> list[str]:
    """One device per worker: cuda:0..N-1 when ``auto`` and this many GPUs are visible,
    otherwise the server's device for every worker."""
    if device == "auto":
        try:
            import torch

            gpus = torch.cuda.device_count()
        except Exception:
            gpus = 0
        if gpus:
            return [f"cuda:{i % gpus}" for i in range(count)]
    return [device] * count


def worker_command(args: argparse.Namespace, settings: object, queue_url: str, device: str) -> list[str]:
    command = [sys.executable, "-m", "core", "worker", "--queue", queue_url, "--device", device]
    command += ["--data-dir", str(settings.data_dir), "--models-dir", str(settings.models_dir)]  # type: ignore[attr-defined]
    for folder in args.extensions_dir or ():
        command += ["--extensions-dir", str(folder)]
    for name in args.disable or ():
        command += ["--disable", name]
    if args.safe_mode:
        command.append("--safe-mode")
    if args.allow_pickle:
        command.append("--allow-pickle")
    if args.memory_mode:
        command += ["--memory-mode", args.memory_mode]
    if args.lease_s:
        command += ["--lease-s", str(args.lease_s)]
    if args.max_attempts:
        command += ["--max-attempts", str(args.max_attempts)]
    if args.result_images:
        command += ["--result-images", args.result_images]
    if args.result_image_max_mb:
        command += ["--result-image-max-mb", str(args.result_image_max_mb)]
    return command


class LocalWorkers:
    def __init__(self, commands: list[list[str]]) -> None:
        self.commands = commands
        self.processes: list[subprocess.Popen] = []

    def start(self) -> LocalWorkers:
        for command in self.commands:
            # own process group: a Ctrl-C in the terminal reaches the server, which drains them
            process = subprocess.Popen(command, env=os.environ.copy(), start_new_session=True)
            log.info("started worker process %d on %s", process.pid, command[command.index("--device") + 1])
            self.processes.append(process)
        return self

    def stop(self, timeout_s: float = DRAIN_TIMEOUT_S) -> None:
        """SIGTERM (each drains its job), then SIGKILL whatever is left after the timeout."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker process %d did not drain in %.0f s; killed", process.pid, timeout_s)
                process.kill()
                process.wait()
        self.processes.clear()
