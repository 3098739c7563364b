"""``easel serve``: the WebUI and the REST API on one port, one queue, and the workers:
one in this process (default), ``--workers N`` worker processes, or none (``--workers 0``:
an API/WebUI node; ``easel worker`` processes elsewhere run the jobs)."""

from __future__ import annotations

import argparse
import fcntl
import importlib
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("easel.serve")


def add_parser(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("serve", help="run the WebUI and the REST API", parents=[common])
    parser.add_argument("--host", help="address to bind (default 127.0.0.1; EASEL_HOST)")
    parser.add_argument("--port", type=int, help="port (default 7860; EASEL_PORT)")
    parser.add_argument(
        "--listen", action="store_true", help="bind 0.0.0.0 (reachable by others: use --api-auth)"
    )
    parser.add_argument(
        "--api-auth", metavar="USER:PASS", help="HTTP Basic auth for the API and the WebUI (EASEL_API_AUTH)"
    )
    parser.add_argument(
        "--cors-allow-origins",
        metavar="ORIGINS",
        help="comma-separated origins allowed to call the API from a browser page on another site "
        "(default: none; EASEL_CORS_ALLOW_ORIGINS)",
    )
    parser.add_argument(
        "--allowed-hosts",
        metavar="NAMES",
        help="comma-separated host names the server answers besides localhost, 127.0.0.1 and [::1] "
        "(e.g. the machine's LAN name with --listen; '*' turns the check off; EASEL_ALLOWED_HOSTS)",
    )
    parser.add_argument("--no-ui", action="store_true", help="serve the API only, no WebUI")
    parser.add_argument(
        "--api-server-stop",
        action="store_true",
        help="allow /sdapi/v1/server-stop and /server-kill, as A1111's flag (EASEL_API_SERVER_STOP)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="N worker processes (one GPU each when there are N); 0: only queue and serve. "
        "Default: one worker inside this process",
    )
    from core.cli.worker import add_queue_options

    add_queue_options(parser)
    parser.set_defaults(run=run)


def lock_data_dir(state_dir: Path) -> Any:
    """One server per data folder: two workers on one SQLite queue would each think the
    other's running job was lost at start-up. The lock dies with the process."""
    state_dir.mkdir(parents=True, exist_ok=True)
    handle = open(state_dir / "server.lock", "a+")  # noqa: SIM115 - held for the process's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise SystemExit(f"easel serve: another server already uses {state_dir.parent}") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def mount_ui(app: Any, host: Any, service: Any) -> None:
    """Mount the WebUI when it is installed. Looked up by name at run time: the core
    does not depend on the ui package (the architecture contracts forbid the import)."""
    try:
        ui = importlib.import_module("ui")
    except ImportError:
        log.warning("WebUI not installed: serving the API only")
        return
    mount = getattr(ui, "mount", None)
    if mount is None:
        log.warning("WebUI has no mount(): serving the API only")
        return
    mount(app, host, service)


def _comma_list(value: str | None) -> list[str] | None:
    """A comma-separated flag as a list; None when absent (the variable then applies)."""
    if value is None:
        return None
    return [item.strip() for item in value.split(",") if item.strip()]


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from core.api.app import create_app
    from core.cli import server_link
    from core.cli.local_workers import LocalWorkers, worker_command, worker_devices
    from core.cli.main import settings_from_args
    from core.cli.worker import queue_settings
    from core.engine import Engine
    from core.errors import SettingError
    from core.host import Host
    from core.jobs import JobService
    from core.jobs.open_queue import default_queue_url, open_queue, queue_url

    host_address = "0.0.0.0" if args.listen else args.host
    settings = settings_from_args(
        args,
        host=host_address,
        port=args.port,
        api_auth=args.api_auth,
        allowed_hosts=_comma_list(args.allowed_hosts),
        cors_allow_origins=_comma_list(args.cors_allow_origins),
        **queue_settings(args),
    )
    if args.workers is not None and args.workers < 0:
        raise SettingError(f"--workers {args.workers}: must be 0 or more")
    if args.api_server_stop:
        settings.allow_server_control = True
    if settings.api_auth is not None and ":" not in settings.api_auth:
        raise SystemExit("easel serve: --api-auth must be user:password")
    if settings.listens_publicly:
        if not settings.api_auth:
            log.warning(
                "listening on %s without --api-auth: anyone on the network can use this server", settings.host
            )
        if not settings.install_allowed:
            log.warning("extension installation is off while listening beyond loopback")
        if not settings.allowed_hosts:
            log.warning(
                "only requests for localhost, 127.0.0.1 and [::1] are answered: give the names others "
                "use to reach this machine with --allowed-hosts"
            )
    try:  # a malformed --allowed-hosts entry stops here, before anything starts
        from core.api.origin import OriginPolicy

        OriginPolicy.from_settings(settings)
    except ValueError as exc:
        raise SystemExit(f"easel serve: {exc}") from None
    lock = lock_data_dir(settings.state_dir)
    host = Host(settings).start()
    engine = Engine(host)
    url = queue_url(args.queue, settings.state_dir)
    queue = open_queue(url)
    # The data folder's own SQLite file with the embedded worker: the only worker (the
    # folder lock says so). Any other queue may have `easel worker`s elsewhere: then the
    # embedded worker is one of several (leases, registry, job-named images).
    own_queue = url == default_queue_url(settings.state_dir)
    shared = args.workers is None and not own_queue
    settings.job_image_names = settings.job_image_names or shared
    service = JobService.for_engine(engine, queue, settings=settings, shared=shared)
    local_workers: LocalWorkers | None = None
    if args.workers is None:
        # a job left running on our own queue was lost with the last server
        service.start(recover=own_queue, remote_events=shared)
    else:
        service.start(recover=False, run_worker=False)
        devices = worker_devices(args.workers, settings.device)
        local_workers = LocalWorkers([worker_command(args, settings, url, d) for d in devices]).start()
    app = create_app(
        host,
        service,
        engine=engine,
        # Here and not only in `finally`: uvicorn re-raises the SIGTERM it handled once the app
        # has shut down, so code after uvicorn.run does not run on a signal.
        on_shutdown=[
            lambda: server_link.withdraw(settings.state_dir),
            *([local_workers.stop] if local_workers else []),
            service.stop,
            host.stop,
        ],
    )
    if not args.no_ui:
        mount_ui(app, host, service)
    log.info("Easel on http://%s:%d (data in %s)", settings.host, settings.port, settings.data_dir)
    # `easel generate` on this data folder finds the server here and queues its jobs with us.
    url = server_link.client_url(settings.host, settings.port)
    server_link.announce(settings.state_dir, url, needs_auth=bool(settings.api_auth))
    try:
        uvicorn.run(
            app, host=settings.host, port=settings.port, log_level="info", timeout_graceful_shutdown=5
        )
    finally:
        server_link.withdraw(settings.state_dir)
        if local_workers is not None:
            local_workers.stop()
        service.stop()
        host.stop()
        lock.close()
    return 0
