"""``easel serve``: the WebUI and the REST API on one port, one worker, one queue."""

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
        help="comma-separated origins allowed to call the API from a browser (default: none)",
    )
    parser.add_argument("--no-ui", action="store_true", help="serve the API only, no WebUI")
    parser.add_argument(
        "--api-server-stop",
        action="store_true",
        help="allow /sdapi/v1/server-stop and /server-kill, as A1111's flag (EASEL_API_SERVER_STOP)",
    )
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


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from core.api.app import create_app
    from core.cli.main import settings_from_args
    from core.engine import Engine
    from core.host import Host
    from core.jobs import JobService, SqliteJobQueue

    host_address = "0.0.0.0" if args.listen else args.host
    settings = settings_from_args(args, host=host_address, port=args.port, api_auth=args.api_auth)
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
    lock = lock_data_dir(settings.state_dir)
    host = Host(settings).start()
    engine = Engine(host)
    queue = SqliteJobQueue(settings.state_dir / "queue.db")
    service = JobService.for_engine(engine, queue, settings=settings).start()
    origins = [o.strip() for o in (args.cors_allow_origins or "").split(",") if o.strip()]
    app = create_app(
        host,
        service,
        engine=engine,
        cors_allow_origins=origins or None,
        on_shutdown=[service.stop, host.stop],
    )
    if not args.no_ui:
        mount_ui(app, host, service)
    log.info("Easel on http://%s:%d (data in %s)", settings.host, settings.port, settings.data_dir)
    try:
        uvicorn.run(
            app, host=settings.host, port=settings.port, log_level="info", timeout_graceful_shutdown=5
        )
    finally:
        service.stop()
        host.stop()
        lock.close()
    return 0
