"""``easel generate`` through a running ``easel serve``: queue, follow, print the paths.

Nothing here imports torch or diffusers: the server has the model loaded already. The
request is the native API's JobRequest, built by the same ``request_fields`` as a local
run, so the defaults are the same either way. Ctrl+C cancels the job on the server.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from core.cli.progress_bar import PhaseBar
from core.cli.server_link import basic_auth, print_refusal, read_events

CLIENT_ERRORS = (400, 401, 403, 404, 409, 413, 422)


def follow(client: Any, job_id: str) -> dict[str, Any] | None:
    """The finished job from the events stream (progress drawn on the way), None if it broke."""
    import httpx

    bar = PhaseBar()
    try:
        with client.stream(
            "GET",
            f"/api/v1/jobs/{job_id}/events",
            params={"preview": "none"},
            timeout=httpx.Timeout(30.0, read=None),  # a long step or a queue wait is no error
        ) as events:
            for kind, data in read_events(events):
                if kind == "progress" and data:
                    bar.update(data)
                elif kind == "result":
                    return data
    finally:
        bar.close()
    return None


def save_download(client: Any, url: str, destination: Path) -> Path:
    """An image the server wrote elsewhere (another machine), written here atomically."""
    response = client.get(url)
    response.raise_for_status()
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(f".tmp-{os.getpid()}-{destination.name}")
    temporary.write_bytes(response.content)
    os.replace(temporary, destination)
    return destination


def local_paths(client: Any, job: dict[str, Any], outputs_dir: Path) -> list[Path]:
    """Where the images are for this CLI: the server's own files when it shares the data
    folder, else downloads to the same names under this CLI's outputs folder."""
    files = (job.get("result") or {}).get("files") or []
    paths = []
    for index, url in enumerate(job.get("images", [])):
        name = files[index] if index < len(files) and files[index] else f"server/{job['id']}-{index}.png"
        local = outputs_dir / name
        paths.append(local if local.is_file() else save_download(client, url, local))
    return paths


def generate_via_server(url: str, fields: dict[str, Any], outputs_dir: Path) -> int:
    import httpx

    with httpx.Client(base_url=url, auth=basic_auth(), timeout=30.0) as client:
        try:
            response = client.post("/api/v1/jobs", json=fields)
        except httpx.HTTPError as exc:
            print(f"easel generate: cannot reach the server at {url}: {exc}", file=sys.stderr)
            return 1
        if response.status_code in CLIENT_ERRORS:
            print_refusal(response)
            return 2
        response.raise_for_status()
        job_id = response.json()["id"]
        print(f"easel generate: job {job_id} queued on {url} (--local runs in this process)", file=sys.stderr)
        try:
            job = follow(client, job_id)
        except KeyboardInterrupt:
            client.delete(f"/api/v1/jobs/{job_id}")
            print(f"\neasel generate: cancelled job {job_id} on the server", file=sys.stderr)
            return 130
        if job is None:
            job = client.get(f"/api/v1/jobs/{job_id}").json()
        for warning in (job.get("result") or {}).get("warnings", []):
            print(f"warning: {warning}", file=sys.stderr)
        if job["status"] != "done":
            print(f"easel generate: job {job_id} {job['status']}: {job.get('error') or ''}", file=sys.stderr)
            return 1
        for path in local_paths(client, job, outputs_dir):
            print(path)
    return 0
