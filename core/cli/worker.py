"""``easel worker``: claim jobs from the queue and run them on one device.

Start one per GPU (``--device cuda:1``, or ``CUDA_VISIBLE_DEVICES``), on this machine or
another, with the same extensions, models folder and settings as the API node; they share
the queue named by ``--queue`` / ``EASEL_QUEUE_URL``. SIGTERM (or Ctrl-C) drains: the
running job is finished, no other is taken; a second Ctrl-C interrupts it.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

log = logging.getLogger("easel.worker")


def add_queue_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--queue",
        metavar="URL",
        help="sqlite:///path/queue.db or postgresql://user:pass@host/db "
        "(EASEL_QUEUE_URL; default: the data folder's queue.db)",
    )
    parser.add_argument(
        "--lease-s", type=float, help="a dead worker's job is claimed again after this (EASEL_LEASE_S, 30)"
    )
    parser.add_argument(
        "--max-attempts",
        type=int,
        help="runs of a job before it fails as a poison job (EASEL_MAX_ATTEMPTS, 3)",
    )
    parser.add_argument(
        "--result-images",
        choices=("shared-folder", "db"),
        help="how the API node gets a worker's images: the outputs folder mounted on every machine, "
        "or their bytes stored in the queue (EASEL_RESULT_IMAGES, shared-folder)",
    )
    parser.add_argument(
        "--result-image-max-mb",
        type=float,
        help="--result-images db: the largest image stored in the queue (EASEL_RESULT_IMAGE_MAX_MB, 64)",
    )


def add_parser(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("worker", help="run queued jobs on one device", parents=[common])
    add_queue_options(parser)
    parser.set_defaults(run=run)


def queue_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The queue flags as Settings overrides, each checked (the error names the flag)."""
    from core.errors import SettingError

    if args.lease_s is not None and args.lease_s <= 0:
        raise SettingError(f"--lease-s {args.lease_s}: must be > 0 seconds")
    if args.max_attempts is not None and args.max_attempts < 1:
        raise SettingError(f"--max-attempts {args.max_attempts}: must be at least 1")
    if args.result_image_max_mb is not None and args.result_image_max_mb <= 0:
        raise SettingError(f"--result-image-max-mb {args.result_image_max_mb}: must be > 0")
    return {
        "lease_s": args.lease_s,
        "max_attempts": args.max_attempts,
        "result_images": args.result_images,
        "result_image_max_mb": args.result_image_max_mb,
    }


def run(args: argparse.Namespace) -> int:
    from core.cli.main import settings_from_args
    from core.engine import Engine
    from core.host import Host
    from core.jobs import JobService
    from core.jobs.open_queue import open_queue, queue_url

    settings = settings_from_args(args, job_image_names=True, **queue_settings(args))
    url = queue_url(args.queue, settings.state_dir)
    queue = open_queue(url)  # before loading anything: a bad URL fails at once
    host = Host(settings).start()
    engine = Engine(host)
    device = str(engine.models.device)
    service = JobService.for_engine(engine, queue, settings=settings, shared=True)
    worker = service.worker
    signals = {"count": 0}

    def on_signal(signum: int, _frame: Any) -> None:
        signals["count"] += 1
        if signals["count"] == 1 or signum == signal.SIGTERM:
            log.info(
                "worker %s: draining (finishing job %s, taking no more)",
                worker.worker_id,
                worker.current_job_id,
            )
            worker.drain()
        else:  # a second Ctrl-C: stop now, the job is recorded as interrupted
            threading.Thread(target=worker.stop, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    service.start(recover=False)
    log.info(
        "worker %s on %s, queue %s, result images: %s",
        worker.worker_id,
        device,
        _shown(url),
        settings.result_images,
    )
    try:
        while worker.is_alive():
            worker.join(0.5)
    finally:
        service.stop()
        host.stop()
    log.info("worker %s stopped after %d jobs", worker.worker_id, worker.info.jobs_done)
    return 0


def _shown(url: str) -> str:
    from core.jobs.postgres_queue import _redact

    return _redact(url)
