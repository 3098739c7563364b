"""How ``easel generate`` finds the ``easel serve`` of its data folder, and talks to it.

The server announces itself in ``<data>/.easel/server.json`` (its URL and pid) and removes
the file when it stops. A CLI on the same data folder that finds a live server sends its job
there instead of loading a second copy of the model: the job goes through the server's one
queue, and the CLI imports no torch, so it starts in a fraction of a second.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

SERVER_FILE = "server.json"
HEALTH_TIMEOUT_S = 2.0


def client_url(host: str, port: int) -> str:
    """The URL a local client uses: a server bound to every address is reached on loopback."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def announce(state_dir: Path, url: str, needs_auth: bool) -> Path:
    """Write server.json atomically (a reader never sees half a file), readable by its owner."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / SERVER_FILE
    temporary = state_dir / f".{SERVER_FILE}.{os.getpid()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"url": url, "pid": os.getpid(), "auth": needs_auth}, handle)
    os.replace(temporary, path)
    return path


def withdraw(state_dir: Path) -> None:
    """Remove server.json if it is still this process's (a newer server may have replaced it)."""
    path = state_dir / SERVER_FILE
    try:
        if json.loads(path.read_text("utf-8")).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def announced_server(state_dir: Path) -> str | None:
    """The URL in server.json when its process still runs and answers /api/v1/health."""
    try:
        info = json.loads((state_dir / SERVER_FILE).read_text("utf-8"))
        url, pid = str(info["url"]), int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _alive(pid):
        return None
    return url if healthy(url) else None


def healthy(url: str) -> bool:
    import httpx

    try:
        response = httpx.get(f"{url}/api/v1/health", timeout=HEALTH_TIMEOUT_S, auth=basic_auth())
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def basic_auth() -> tuple[str, str] | None:
    """A server started with --api-auth wants the same EASEL_API_AUTH from its clients."""
    value = os.environ.get("EASEL_API_AUTH")
    if not value or ":" not in value:
        return None
    user, password = value.split(":", 1)
    return user, password


def read_events(response: Any):
    """Server-Sent Events from a streaming httpx response, as (event, data) pairs."""
    event, data = None, []
    for line in response.iter_lines():
        if line == "":
            if event is not None:
                yield event, json.loads("\n".join(data)) if data else None
            event, data = None, []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


def print_refusal(response: Any) -> None:
    """A 4xx from the server as the one-line errors the local CLI prints."""
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    if isinstance(detail, list):  # pydantic: [{"loc": [...], "msg": ...}]
        detail = "; ".join(f"{'.'.join(map(str, d.get('loc', [])[1:]))}: {d.get('msg')}" for d in detail)
    print(f"easel generate: {detail}", file=sys.stderr)
